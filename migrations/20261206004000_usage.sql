-- The usage ledger: one row per model call (an inference job that reached a final state with token usage),
-- written by a trigger in the transaction that records the job's result, whichever path finishes it (a node's
-- finish, the reaper, a cancel). Attributable to the job's task, its agent turn (the task of a turn's model
-- steps), install, requester and conversation (channel and thread), and queryable per UTC day.
--
-- No foreign keys: the ledger is an accounting record that outlives the rows it names.
CREATE TABLE usage_ledger (
    job_id            uuid PRIMARY KEY,
    task_id           uuid NOT NULL,
    -- The agent turn whose model step this was (NULL for `ask` and other one-shot calls).
    turn_id           uuid,
    install_id        uuid,
    requester         text NOT NULL,
    conversation_id   uuid,
    -- The model the job asked for ('' = the node's default).
    model             text NOT NULL DEFAULT '',
    prompt_tokens     bigint NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens bigint NOT NULL CHECK (completion_tokens >= 0),
    -- The UTC day of `at`: budgets are per UTC day and reset at 00:00 UTC.
    day               date NOT NULL,
    at                timestamptz NOT NULL DEFAULT now()
);
-- Budget checks (today's sum for an install, or for a requester of an install) and reports by day range.
CREATE INDEX usage_ledger_day_idx ON usage_ledger (day, install_id, requester);

-- A token count from a node's `usage` object: a non-negative whole number below 10^15, anything else 0 — a
-- node's odd value must never make the finish that records it fail.
CREATE FUNCTION usage_tokens(v jsonb) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'number' AND v::numeric >= 0 AND v::numeric < 1e15
                THEN trunc(v::numeric)::bigint ELSE 0 END
$$;

CREATE FUNCTION usage_on_job_finished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_ledger (job_id, task_id, turn_id, install_id, requester, conversation_id, model,
                              prompt_tokens, completion_tokens, day, at)
    SELECT NEW.id, t.id, a.id, t.install_id, t.requester, coalesce(t.conversation_id, a.conversation_id),
           coalesce(NEW.spec->>'model', ''),
           usage_tokens(NEW.result->'usage'->'prompt_tokens'), usage_tokens(NEW.result->'usage'->'completion_tokens'),
           (now() AT TIME ZONE 'UTC')::date, now()
    FROM tasks t LEFT JOIN agent_turns a ON a.steps_task_id = t.id
    WHERE t.id = NEW.task_id
    ON CONFLICT (job_id) DO NOTHING;
    RETURN NULL;
END;
$$;
-- The WHEN clause is evaluated without calling the function, so finishing a sandbox or host job (or an
-- inference job without usage) costs one comparison.
CREATE TRIGGER usage_on_job_finished AFTER UPDATE OF state ON jobs
    FOR EACH ROW
    WHEN (NEW.executor = 'inference'
          AND NEW.state IN ('succeeded', 'failed', 'cancelled', 'timed_out')
          AND OLD.state IS DISTINCT FROM NEW.state
          AND jsonb_typeof(NEW.result->'usage') = 'object')
    EXECUTE FUNCTION usage_on_job_finished();

-- The trigger finds a model step's turn by its steps task.
CREATE INDEX agent_turns_steps_task_idx ON agent_turns (steps_task_id);
