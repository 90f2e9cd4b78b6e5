-- The claim as a database function (called by orchestrator/src/dispatch/lease.rs), so that its plan does not
-- depend on the statistics of the moment.
--
-- The best plan for a claim is always the same: read queued jobs in index order (priority, then age), test
-- each against the node, lock the first that fit (skipping those another claim holds) and stop. The planner
-- does not know that. It estimates the requirement checks at one row, and a pooled connection caches a generic
-- plan after five claims, planned from statistics that were typically taken when the queue was nearly empty: a bitmap scan of every queued job and a sort, O(queue) on every claim (measured:
-- 938 full job cycles/s at 20,000 queued jobs, 1,639 at 5,000, on the same machine). Under the function's
-- `SET enable_sort = off, enable_bitmapscan = off` no plan without those nodes is left but the ordered index
-- scan, whatever the statistics say; and its one plan is planned once per connection (`force_generic_plan`:
-- left to choose, the server re-planned the claim on every call, 0.3 ms each, because the generic plan's
-- estimate came out above the custom ones).
--
-- One statement, `UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED)`, so no job is leased twice. For each executor
-- kind the node runs, it walks that kind's queue (`jobs_runnable_idx`) from its head and stops at the first jobs
-- that fit: a fraction of a millisecond when the head is work for this node, longer when the node has to walk
-- past queued work of its executor kind that it cannot take (labels, templates, models), as far as its first
-- match. Other executors' work is never walked.

CREATE FUNCTION claim_jobs(p_node uuid, p_max integer, p_lease_ttl_ms bigint, p_executors text[],
                           p_templates text[], p_models text[], p_gpu_memory_mb bigint, p_labels jsonb,
                           p_prefer_window_ms bigint)
    RETURNS TABLE (job_id uuid, job_attempt integer, job_lease_token uuid, job_spec jsonb)
    LANGUAGE sql
    SET enable_sort = off
    SET enable_bitmapscan = off
    SET plan_cache_mode = force_generic_plan
AS $$
    WITH picked AS (
        -- Per executor kind the node runs, its best jobs that fit, locked, from one ordered scan of
        -- `jobs_runnable_idx` (a node never walks past other executors' work); then the best of those. Jobs
        -- locked here but not picked stay queued; their locks go with the claim's transaction, which is the
        -- claim alone.
        SELECT c.id
        FROM (SELECT DISTINCT e FROM unnest(p_executors) AS e) AS x
        CROSS JOIN LATERAL (
            SELECT q.id, q.priority, q.created_at FROM jobs q
            WHERE q.state = 'queued' AND q.executor = x.e AND q.run_after <= now()
              -- What the job requires of its node, and the co-location preference (another node's
              -- preferred job becomes anyone's after the preference window).
              AND (q.requirements->>'template' IS NULL OR q.requirements->>'template' = ANY (p_templates))
              AND (q.requirements->>'model' IS NULL OR q.requirements->>'model' = ANY (p_models))
              AND (q.requirements->>'gpu_memory_mb' IS NULL
                   OR (q.requirements->>'gpu_memory_mb')::bigint <= p_gpu_memory_mb)
              AND (NOT q.requirements ? 'labels' OR q.requirements->'labels' <@ p_labels)
              AND (q.requirements->>'prefer_node' IS NULL OR q.requirements->>'prefer_node' = p_node::text
                   OR q.run_after < now() - p_prefer_window_ms * interval '1 millisecond')
            ORDER BY q.priority DESC, q.created_at
            LIMIT p_max
            FOR UPDATE SKIP LOCKED) AS c
        ORDER BY c.priority DESC, c.created_at
        LIMIT p_max)
    UPDATE jobs j
    SET state = 'leased', attempt = j.attempt + 1, lease_token = gen_random_uuid(), leased_at = now(),
        lease_expires_at = now() + p_lease_ttl_ms * interval '1 millisecond', node_id = p_node,
        started_at = coalesce(j.started_at, now())
    FROM picked
    WHERE j.id = picked.id
    RETURNING j.id, j.attempt, j.lease_token, j.spec
$$;

-- Nothing reads the queue across executors any more (the claim walks `jobs_runnable_idx` per executor kind);
-- one index fewer to write on every enqueue and re-queue.
DROP INDEX jobs_queue_order_idx;
