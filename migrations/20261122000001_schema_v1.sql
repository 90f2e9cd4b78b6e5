-- CyNode schema v1. Never edit an applied migration: add a new one.

CREATE EXTENSION IF NOT EXISTS vector;

-- Platform installs: a Slack team, a Discord application, a Telegram bot, or a generic webhook endpoint.
-- `external_id` is what the platform puts in a request (team id, application id, bot path name, endpoint id).
-- `settings` holds non-secret configuration (API base URL, header names); `secrets` holds an encrypted JSON
-- object (XChaCha20-Poly1305 under the install master key), never plaintext.
CREATE TABLE installs (
    id            uuid PRIMARY KEY,
    platform      text NOT NULL CHECK (platform IN ('slack', 'discord', 'telegram', 'webhook')),
    external_id   text NOT NULL CHECK (length(external_id) BETWEEN 1 AND 255),
    name          text NOT NULL,
    settings      jsonb NOT NULL DEFAULT '{}'::jsonb,
    secrets       bytea,
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (platform, external_id)
);

-- Every accepted delivery from a platform, exactly once: the unique key is the dedupe point.
CREATE TABLE inbound_events (
    id            uuid PRIMARY KEY,
    install_id    uuid NOT NULL REFERENCES installs (id),
    platform      text NOT NULL,
    delivery_id   text NOT NULL,
    kind          text NOT NULL,
    payload       jsonb NOT NULL,
    retry_num     integer,
    retry_reason  text,
    received_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (platform, install_id, delivery_id)
);

-- A place where a conversation happens: a channel plus an optional thread.
CREATE TABLE conversations (
    id            uuid PRIMARY KEY,
    install_id    uuid NOT NULL REFERENCES installs (id),
    channel       text NOT NULL,
    thread        text NOT NULL DEFAULT '',
    thread_ref    jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (install_id, channel, thread)
);

-- What someone asked for (one command or one agent turn).
CREATE TABLE tasks (
    id              uuid PRIMARY KEY,
    inbound_id      uuid UNIQUE REFERENCES inbound_events (id),
    conversation_id uuid REFERENCES conversations (id),
    install_id      uuid REFERENCES installs (id),
    requester       text NOT NULL,
    source          text NOT NULL DEFAULT 'chat',
    command         text NOT NULL,
    text            text NOT NULL DEFAULT '',
    args            jsonb NOT NULL DEFAULT '{}'::jsonb,
    state           text NOT NULL DEFAULT 'received'
                    CHECK (state IN ('received', 'waiting', 'queued', 'running', 'succeeded', 'failed',
                                     'cancelled', 'answered')),
    reply           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_conversation_idx ON tasks (conversation_id, created_at);

-- Registered node agents and the keys they register with (stored hashed).
CREATE TABLE node_keys (
    id            uuid PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    key_hash      bytea NOT NULL UNIQUE,
    grants        jsonb NOT NULL DEFAULT '{}'::jsonb,
    revoked_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE nodes (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    key_id        uuid REFERENCES node_keys (id),
    capabilities  jsonb NOT NULL DEFAULT '{}'::jsonb,
    protocol      integer NOT NULL DEFAULT 1,
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (key_id, name)
);

-- Sandbox templates: image, limits, network access, environment allowlist.
CREATE TABLE templates (
    name          text PRIMARY KEY,
    image         text NOT NULL,
    spec          jsonb NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Approval policy rules, evaluated in order per install (NULL install = every install).
CREATE TABLE policy_rules (
    id            uuid PRIMARY KEY,
    install_id    uuid REFERENCES installs (id),
    position      integer NOT NULL,
    rule          jsonb NOT NULL,
    UNIQUE (install_id, position)
);

-- Units of work handed to nodes. One row per job; `attempt` counts leases, and `lease_token` fences writes.
CREATE TABLE jobs (
    id              uuid PRIMARY KEY,
    task_id         uuid NOT NULL REFERENCES tasks (id),
    executor        text NOT NULL CHECK (executor IN ('docker', 'inference', 'host')),
    spec            jsonb NOT NULL,
    requirements    jsonb NOT NULL DEFAULT '{}'::jsonb,
    state           text NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('awaiting_approval', 'queued', 'leased', 'running', 'succeeded',
                                     'failed', 'cancelled', 'timed_out')),
    priority        integer NOT NULL DEFAULT 0,
    attempt         integer NOT NULL DEFAULT 0,
    max_attempts    integer NOT NULL DEFAULT 3,
    run_after       timestamptz NOT NULL DEFAULT now(),
    lease_token     uuid,
    leased_at       timestamptz,
    lease_expires_at timestamptz,
    timeout_s       integer NOT NULL DEFAULT 300,
    node_id         uuid REFERENCES nodes (id),
    cancel_requested boolean NOT NULL DEFAULT false,
    result          jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz
);
CREATE INDEX jobs_runnable_idx ON jobs (executor, priority DESC, created_at) WHERE state = 'queued';
CREATE INDEX jobs_leases_idx ON jobs (lease_expires_at) WHERE state IN ('leased', 'running');
CREATE INDEX jobs_task_idx ON jobs (task_id);

-- Output uploaded by nodes, idempotent by (job, attempt, stream, seq).
CREATE TABLE job_output_chunks (
    job_id        uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt       integer NOT NULL,
    stream        text NOT NULL CHECK (stream IN ('stdout', 'stderr', 'system')),
    seq           bigint NOT NULL,
    data          bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, attempt, stream, seq)
);

CREATE TABLE approvals (
    id            uuid PRIMARY KEY,
    job_id        uuid NOT NULL REFERENCES jobs (id),
    state         text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'approved', 'denied', 'expired')),
    approvers     jsonb NOT NULL DEFAULT '[]'::jsonb,
    requested_by  text NOT NULL,
    decided_by    text,
    decided_at    timestamptz,
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX approvals_pending_idx ON approvals (expires_at) WHERE state = 'pending';

-- What CyNode has posted into a thread for a task, so any replica can continue a stream.
CREATE TABLE stream_records (
    id            uuid PRIMARY KEY,
    task_id       uuid NOT NULL REFERENCES tasks (id),
    conversation_id uuid NOT NULL REFERENCES conversations (id),
    message_ids   jsonb NOT NULL DEFAULT '[]'::jsonb,
    rendered      text NOT NULL DEFAULT '',
    next_offset   bigint NOT NULL DEFAULT 0,
    state         text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (task_id, conversation_id)
);

-- Outbound webhook subscriptions (Standard Webhooks) and their delivery outbox.
CREATE TABLE subscriptions (
    id            uuid PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    url           text NOT NULL,
    event_types   text[] NOT NULL DEFAULT '{}',
    filter        jsonb NOT NULL DEFAULT '{}'::jsonb,
    secrets       bytea NOT NULL,
    enabled       boolean NOT NULL DEFAULT true,
    disabled_reason text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE deliveries (
    id              uuid PRIMARY KEY,
    subscription_id uuid NOT NULL REFERENCES subscriptions (id),
    event_type      text NOT NULL,
    payload         jsonb NOT NULL,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE state = 'pending';

-- API tokens for the user API: only a hash is stored.
CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    token_hash    bytea NOT NULL UNIQUE,
    install_id    uuid REFERENCES installs (id),
    role          text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

-- Append-only, hash-chained audit log: hash = sha256(prev_hash || canonical entry).
CREATE TABLE audit_log (
    seq           bigint PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    actor         text NOT NULL,
    action        text NOT NULL,
    subject       text NOT NULL,
    detail        jsonb NOT NULL DEFAULT '{}'::jsonb,
    prev_hash     bytea NOT NULL,
    hash          bytea NOT NULL UNIQUE
);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- Long-term memory for agent turns: 384-dimensional embeddings with an HNSW cosine index.
CREATE TABLE memories (
    id            uuid PRIMARY KEY,
    install_id    uuid REFERENCES installs (id),
    conversation_id uuid REFERENCES conversations (id),
    content       text NOT NULL,
    embedding     vector(384) NOT NULL,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX memories_embedding_idx ON memories USING hnsw (embedding vector_cosine_ops);
