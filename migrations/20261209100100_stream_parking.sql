-- Streams that wait for a person (an approval card, nothing else can change) are parked instead of polled:
-- the replica saves the stream and lets its claim go with `parked_until` set, and no replica claims it again
-- until a wake-up — the job leaving `awaiting_approval`, the approval decided or expired, a vote — or, as a
-- safety net, `parked_until` passing. Thousands of open approval cards then cost nothing between events.
--
-- `wake_seq` closes the race between deciding to park and a wake-up: every wake-up bumps it, and a stream parks
-- only if it still holds the value read at the start of the step (a wake-up in between, committed or not, either
-- changed the value or holds the row's lock until it has).
ALTER TABLE stream_records ADD COLUMN parked_until timestamptz;
ALTER TABLE stream_records ADD COLUMN wake_seq bigint NOT NULL DEFAULT 0;

CREATE FUNCTION stream_records_wake(p_task uuid) RETURNS void LANGUAGE sql AS $$
    UPDATE stream_records SET wake_seq = wake_seq + 1, parked_until = NULL WHERE task_id = p_task;
$$;

CREATE FUNCTION stream_records_wake_on_job() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM stream_records_wake(NEW.task_id);
    RETURN NULL;
END $$;
CREATE TRIGGER stream_records_wake_on_job AFTER UPDATE OF state ON jobs
    FOR EACH ROW WHEN (OLD.state = 'awaiting_approval' AND NEW.state IS DISTINCT FROM OLD.state)
    EXECUTE FUNCTION stream_records_wake_on_job();

CREATE FUNCTION stream_records_wake_on_approval() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM stream_records_wake((SELECT task_id FROM jobs WHERE id = NEW.job_id));
    RETURN NULL;
END $$;
CREATE TRIGGER stream_records_wake_on_approval AFTER UPDATE OF state ON approvals
    FOR EACH ROW WHEN (NEW.state IS DISTINCT FROM OLD.state)
    EXECUTE FUNCTION stream_records_wake_on_approval();

CREATE FUNCTION stream_records_wake_on_vote() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM stream_records_wake((SELECT j.task_id FROM approvals a JOIN jobs j ON j.id = a.job_id
                                 WHERE a.id = NEW.approval_id));
    RETURN NULL;
END $$;
CREATE TRIGGER stream_records_wake_on_vote AFTER INSERT ON approval_votes
    FOR EACH ROW EXECUTE FUNCTION stream_records_wake_on_vote();
