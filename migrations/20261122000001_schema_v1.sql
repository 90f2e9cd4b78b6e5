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

-- Every accepted delivery from a platform, exactly once: the unique key is the dedupe point. `kind` is the neutral
-- kind (`mention`, `command`, `action`, `webhook`); `payload` the neutral inbound as JSON; `retry_num` and
-- `retry_reason` are Slack's `X-Slack-Retry-Num` / `X-Slack-Retry-Reason` of the delivery that was recorded.
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

-- A place where a conversation happens: a channel plus an optional thread ('' when not threaded). `thread_ref` is
-- the neutral ThreadRef without `reply_to` (which is per message: see the inbound payload).
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
    -- Interpretation of a 'received' task: the replica working on it holds it until `claimed_until`; a crashed
    -- replica's claim expires and another picks the task up. `interpret_attempts` counts claims.
    claimed_until   timestamptz,
    interpret_attempts integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_conversation_idx ON tasks (conversation_id, created_at);
CREATE INDEX tasks_received_idx ON tasks (created_at) WHERE state = 'received';

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
    -- The install whose outbound budget the stream spends.
    install_id    uuid REFERENCES installs (id),
    -- A fingerprint of what each owned message (same index as `message_ids`) last showed.
    pages         jsonb NOT NULL DEFAULT '[]'::jsonb,
    -- Record-before-send: the index of a post in flight. A replica that finds it set with no id at that index
    -- does not post it again (at most once: a crash can lose that one post, never duplicate it).
    pending_post  integer,
    -- The replica driving the stream holds it until `claimed_until` under `claim_token`; writes are fenced by it.
    claim_token   uuid,
    claimed_until timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (task_id, conversation_id)
);
CREATE INDEX stream_records_open_idx ON stream_records (created_at) WHERE state = 'open';

-- One outbound budget per (install, bucket) shared by every gateway replica: a token bucket refilled from
-- `refilled_at`, and a hard stop until `blocked_until` after a platform 429 (its Retry-After, exactly).
CREATE TABLE outbound_budget (
    install_id    uuid NOT NULL REFERENCES installs (id),
    bucket        text NOT NULL,
    tokens        double precision NOT NULL,
    refilled_at   timestamptz NOT NULL DEFAULT now(),
    blocked_until timestamptz,
    PRIMARY KEY (install_id, bucket)
);

-- Every chat task with a conversation gets its stream record in the transaction that creates the task.
CREATE FUNCTION stream_records_on_task() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.source = 'chat' AND NEW.conversation_id IS NOT NULL THEN
        INSERT INTO stream_records (id, task_id, conversation_id, install_id)
        VALUES (gen_random_uuid(), NEW.id, NEW.conversation_id, NEW.install_id)
        ON CONFLICT (task_id, conversation_id) DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER stream_records_on_task AFTER INSERT ON tasks
    FOR EACH ROW EXECUTE FUNCTION stream_records_on_task();

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
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- `secrets` is a sealed JSON array of `whsec_…` strings, newest first. After a rotation the older ones stay
    -- valid (are signed with too) until `secrets_retire_at`; NULL means every listed secret is current.
    secrets_retire_at timestamptz,
    -- Set at the first failed attempt after a success, cleared by a success: the sustained-failure clock.
    failing_since timestamptz,
    disabled_at   timestamptz
);

-- Writing new secrets without a retirement time (the bootstrap import) makes every listed secret current.
CREATE FUNCTION subscriptions_secrets_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.secrets IS DISTINCT FROM OLD.secrets
       AND NEW.secrets_retire_at IS NOT DISTINCT FROM OLD.secrets_retire_at THEN
        NEW.secrets_retire_at := NULL;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER subscriptions_secrets_written BEFORE UPDATE OF secrets ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION subscriptions_secrets_written();

-- One row per (event, subscription). `msg_id` is the Standard Webhooks `webhook-id`, stable across attempts and
-- replays (a replay is a new row with the same `msg_id` and `replay_of` naming the original). While a deliverer
-- holds a claim, `claim_token` is set and `next_attempt_at` is the claim's expiry, so a crashed replica's claim
-- becomes due again by itself; results are recorded only under the current token. `state`: `failed` means
-- stopped before retries ran out (the subscription was disabled), `dead` means retries ran out.
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
    delivered_at    timestamptz,
    msg_id          text NOT NULL,
    subject         uuid,
    event_at        timestamptz NOT NULL DEFAULT now(),
    claim_token     uuid,
    last_attempt_at timestamptz,
    last_response   text,
    replay_of       uuid REFERENCES deliveries (id) ON DELETE SET NULL
);
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_subscription_idx ON deliveries (subscription_id, created_at);
CREATE INDEX deliveries_msg_idx ON deliveries (msg_id);
CREATE INDEX deliveries_replay_idx ON deliveries (replay_of) WHERE replay_of IS NOT NULL;

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

-- A task's state from the states of its jobs (one definition, used by every code path that settles tasks).
CREATE FUNCTION task_state_of(job_states text[]) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN cardinality(job_states) = 0 THEN NULL
        WHEN 'leased' = ANY(job_states) OR 'running' = ANY(job_states) THEN 'running'
        WHEN 'queued' = ANY(job_states) THEN 'queued'
        WHEN 'awaiting_approval' = ANY(job_states) THEN 'waiting'
        WHEN job_states <@ ARRAY['succeeded'] THEN 'succeeded'
        WHEN 'cancelled' = ANY(job_states) THEN 'cancelled'
        ELSE 'failed'
    END
$$;

-- An API token's name is who it acts as (the requester of the tasks it submits): unique among live tokens.
CREATE UNIQUE INDEX api_tokens_live_name_idx ON api_tokens (name) WHERE revoked_at IS NULL;

-- What happened to a task, in order: its state changes, its jobs' state changes and their output chunks. The user
-- API streams it as Server-Sent Events whose `id` is `seq`. Rows are written by triggers in the same transaction
-- as the change they describe, whichever code path makes it. `seq` is gapless per task and assigned under a
-- per-task transaction lock, so events become visible in `seq` order: a reader that has seen `seq = n` has seen
-- every event up to `n`, on any replica, across restarts. Output rows reference their chunk (no copy of the data).
CREATE TABLE task_events (
    task_id       uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq           bigint NOT NULL CHECK (seq > 0),
    kind          text NOT NULL CHECK (kind IN ('task', 'job', 'output')),
    job_id        uuid,
    attempt       integer,
    stream        text,
    chunk_seq     bigint,
    detail        jsonb NOT NULL DEFAULT '{}'::jsonb,
    at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, seq)
);

CREATE FUNCTION task_event_append(p_task uuid, p_kind text, p_job uuid, p_attempt integer, p_stream text,
                                  p_chunk bigint, p_detail jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    next_seq bigint;
BEGIN
    -- Held until commit: the next writer for this task waits, so sequence order is commit order.
    PERFORM pg_advisory_xact_lock(hashtextextended('cynode.task_events:' || p_task::text, 0));
    SELECT coalesce(max(seq), 0) + 1 INTO next_seq FROM task_events WHERE task_id = p_task;
    INSERT INTO task_events (task_id, seq, kind, job_id, attempt, stream, chunk_seq, detail)
    VALUES (p_task, next_seq, p_kind, p_job, p_attempt, p_stream, p_chunk, p_detail);
END;
$$;

CREATE FUNCTION task_events_on_task() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR OLD.state IS DISTINCT FROM NEW.state THEN
        PERFORM task_event_append(NEW.id, 'task', NULL, NULL, NULL, NULL,
                                  jsonb_build_object('state', NEW.state, 'reply', NEW.reply));
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER task_events_on_task AFTER INSERT OR UPDATE OF state ON tasks
    FOR EACH ROW EXECUTE FUNCTION task_events_on_task();

CREATE FUNCTION task_events_on_job() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR OLD.state IS DISTINCT FROM NEW.state THEN
        PERFORM task_event_append(NEW.task_id, 'job', NEW.id, NEW.attempt, NULL, NULL,
                                  jsonb_build_object('state', NEW.state, 'result', NEW.result));
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER task_events_on_job AFTER INSERT OR UPDATE OF state ON jobs
    FOR EACH ROW EXECUTE FUNCTION task_events_on_job();

CREATE FUNCTION task_events_on_output() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM task_event_append((SELECT task_id FROM jobs WHERE id = NEW.job_id), 'output', NEW.job_id,
                              NEW.attempt, NEW.stream, NEW.seq, '{}'::jsonb);
    RETURN NULL;
END;
$$;
CREATE TRIGGER task_events_on_output AFTER INSERT ON job_output_chunks
    FOR EACH ROW EXECUTE FUNCTION task_events_on_output();
