-- job.started is raised for every lease, on the claim's path. Building its payload (a lookup of the task's
-- install and a jsonb object) only to find that no subscription wants it cost about as much as the claim's
-- own row work; as with job.output, the trigger now first checks that some enabled subscription could take the
-- event (one that names it, or one that takes every non-opt-in event). The event, when raised, is unchanged.
CREATE OR REPLACE FUNCTION outbox_on_job_started() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'leased' AND OLD.state IS DISTINCT FROM 'leased'
       AND EXISTS (SELECT 1 FROM subscriptions
                   WHERE enabled AND ('job.started' = ANY (event_types) OR cardinality(event_types) = 0)) THEN
        PERFORM outbox_emit('job.started', NEW.id,
            jsonb_build_object('job_id', NEW.id, 'task_id', NEW.task_id,
                               'install_id', (SELECT install_id FROM tasks WHERE id = NEW.task_id),
                               'attempt', NEW.attempt, 'node_id', NEW.node_id, 'executor', NEW.executor,
                               'state', NEW.state),
            false);
    END IF;
    RETURN NULL;
END;
$$;
