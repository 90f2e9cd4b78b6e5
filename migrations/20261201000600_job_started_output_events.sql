-- The outbox write as a database function, so that events raised by triggers and by application code share one
-- definition: a delivery per enabled subscription whose `event_types` name the event (or are empty, unless the
-- event is opt-in), whose `filter` is contained in the payload, and — for a subscription owned by an install —
-- whose payload names that install at its top level (fail closed: none without one). Returns how many
-- deliveries were written.
CREATE FUNCTION outbox_emit(p_event text, p_subject uuid, p_payload jsonb, p_opt_in boolean)
    RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    written bigint;
BEGIN
    INSERT INTO deliveries (id, msg_id, subscription_id, event_type, subject, payload)
    SELECT gen_random_uuid(), 'msg_' || replace(gen_random_uuid()::text, '-', ''), s.id, p_event, p_subject,
           p_payload
    FROM subscriptions s
    WHERE s.enabled
      AND (p_event = ANY (s.event_types) OR (cardinality(s.event_types) = 0 AND NOT p_opt_in))
      AND p_payload @> s.filter
      AND (s.install_id IS NULL OR p_payload->>'install_id' = s.install_id::text);
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END;
$$;

-- job.started: every attempt a node leases, in the transaction of the lease (whichever statement leases it). A
-- short job may go from `leased` straight to its final state, so the lease, not `running`, is the start.
CREATE FUNCTION outbox_on_job_started() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'leased' AND OLD.state IS DISTINCT FROM 'leased' THEN
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
CREATE TRIGGER outbox_on_job_started AFTER UPDATE OF state ON jobs
    FOR EACH ROW EXECUTE FUNCTION outbox_on_job_started();

-- job.output (opt-in): every stored output chunk, in the transaction that stores it. Chunks are idempotent by
-- primary key, so a node's retried upload (ON CONFLICT DO NOTHING) raises no second event. The data is bytes
-- (not necessarily UTF-8), so it travels base64-encoded.
CREATE FUNCTION outbox_on_job_output() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Cheap when nobody subscribes: no payload is built unless some enabled subscription names job.output.
    IF EXISTS (SELECT 1 FROM subscriptions WHERE enabled AND 'job.output' = ANY (event_types)) THEN
        PERFORM outbox_emit('job.output', NEW.job_id,
            jsonb_build_object('job_id', NEW.job_id, 'task_id', j.task_id, 'install_id', t.install_id,
                               'attempt', NEW.attempt, 'stream', NEW.stream, 'seq', NEW.seq,
                               'bytes', octet_length(NEW.data), 'data_base64', translate(encode(NEW.data, 'base64'), E'\n', '')),
            true)
        FROM jobs j JOIN tasks t ON t.id = j.task_id
        WHERE j.id = NEW.job_id;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_on_job_output AFTER INSERT ON job_output_chunks
    FOR EACH ROW EXECUTE FUNCTION outbox_on_job_output();
