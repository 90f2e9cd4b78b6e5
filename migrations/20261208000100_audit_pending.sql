-- Audit entries are appended to an unchained staging table inside the caller's transaction (no lock, so callers'
-- commits group-commit), and one chainer at a time links committed entries into audit_log in batches: one
-- transaction, one advisory lock and one fsync per batch instead of per entry. `at` is when the action's
-- transaction appended it; `seq` (given when chained) is the order in the chain.
CREATE TABLE audit_pending (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor   text NOT NULL,
    action  text NOT NULL,
    subject text NOT NULL,
    detail  jsonb NOT NULL DEFAULT '{}'::jsonb
);

-- Every entry, chained or still waiting for the chainer (seq NULL): what happened, for readers that must see an
-- action as soon as its transaction committed.
CREATE VIEW audit_trail AS
    SELECT seq, at, actor, action, subject, detail FROM audit_log
    UNION ALL
    SELECT NULL::bigint, at, actor, action, subject, detail FROM audit_pending;
