-- External model providers: an OpenAI-compatible API (base URL, key, models) an install — or every install,
-- when `install_id` is NULL — may use for model calls. Routing prefers local inference nodes and sends a model
-- call to a provider only when no online node serves its model or the inference queue is over the provider's
-- threshold.
--
-- A provider is served by an in-process "provider node" in every gateway replica: a node agent whose only
-- executor is `provider`, registered over loopback with the provider's own node key (`node_key_id`; the key
-- itself is sealed here so every replica can open it). Provider jobs carry the label `cynode.provider` = the
-- provider's id, so only that provider's nodes claim them.
CREATE TABLE providers (
    id              uuid PRIMARY KEY,
    name            text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    install_id      uuid REFERENCES installs (id) ON DELETE CASCADE,
    base_url        text NOT NULL CHECK (base_url ~ '^https?://'),
    models          text[] NOT NULL CHECK (cardinality(models) BETWEEN 1 AND 64),
    -- The API key sealed with the master key (context `provider:<id>`); NULL when the provider needs none.
    api_key         bytea,
    -- The provider node's key, sealed (context `provider-node:<id>`), and its row in node_keys.
    node_key        bytea NOT NULL,
    node_key_id     uuid NOT NULL REFERENCES node_keys (id),
    max_concurrent  integer NOT NULL DEFAULT 8 CHECK (max_concurrent BETWEEN 1 AND 256),
    -- Queued inference jobs at or above which a model call that local nodes could serve goes to the provider
    -- instead; 0: only when no local node serves the model.
    queue_threshold integer NOT NULL DEFAULT 8 CHECK (queue_threshold >= 0),
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Jobs may run on the provider executor. NOT VALID + VALIDATE: the check of existing rows does not block writes.
ALTER TABLE jobs DROP CONSTRAINT jobs_executor_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_executor_check
    CHECK (executor IN ('docker', 'inference', 'host', 'provider')) NOT VALID;
ALTER TABLE jobs VALIDATE CONSTRAINT jobs_executor_check;

-- Provider calls are model calls: the usage ledger records them too, with the provider that answered.
ALTER TABLE usage_ledger ADD COLUMN provider_id uuid;

CREATE OR REPLACE FUNCTION usage_on_job_finished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_ledger (job_id, task_id, turn_id, install_id, requester, conversation_id, model,
                              prompt_tokens, completion_tokens, day, at, provider_id)
    SELECT NEW.id, t.id, a.id, t.install_id, t.requester, coalesce(t.conversation_id, a.conversation_id),
           coalesce(NEW.spec->>'model', ''),
           usage_tokens(NEW.result->'usage'->'prompt_tokens'), usage_tokens(NEW.result->'usage'->'completion_tokens'),
           (now() AT TIME ZONE 'UTC')::date, now(),
           -- (checked before the cast: an odd value must never make the finish that records it fail)
           CASE WHEN NEW.executor = 'provider'
                     AND NEW.requirements->'labels'->>'cynode.provider'
                         ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                THEN (NEW.requirements->'labels'->>'cynode.provider')::uuid END
    FROM tasks t LEFT JOIN agent_turns a ON a.steps_task_id = t.id
    WHERE t.id = NEW.task_id
    ON CONFLICT (job_id) DO NOTHING;
    RETURN NULL;
END;
$$;

DROP TRIGGER usage_on_job_finished ON jobs;
CREATE TRIGGER usage_on_job_finished AFTER UPDATE OF state ON jobs
    FOR EACH ROW
    WHEN (NEW.executor IN ('inference', 'provider')
          AND NEW.state IN ('succeeded', 'failed', 'cancelled', 'timed_out')
          AND OLD.state IS DISTINCT FROM NEW.state
          AND jsonb_typeof(NEW.result->'usage') = 'object')
    EXECUTE FUNCTION usage_on_job_finished();
