-- The claim reads the head of the queue in priority and age order across all executors (see
-- orchestrator/src/dispatch/lease.rs, CLAIM_HEAD): without this index it sorted every queued job on each claim.
CREATE INDEX jobs_queue_order_idx ON jobs (priority DESC, created_at) WHERE state = 'queued';
