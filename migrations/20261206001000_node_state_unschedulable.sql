-- Node state that tells the truth, and work nobody can do said at once (issue 13, items 1 and 2).
--
-- `nodes.agent_version`: the node agent's build, as it reported it when it registered (NULL for agents that do
-- not say). `nodes.last_seen_at` is now written by the lease loop and heartbeats (at most every few seconds per
-- node and replica, see orchestrator/src/dispatch/seen.rs), so `online` can mean "seen in the last 10 s".
ALTER TABLE nodes ADD COLUMN agent_version text;

-- `jobs.unschedulable`: why no online node could take the job when it was queued (a user-facing sentence), or
-- NULL when some node could. The reaper fails a job that is still queued and still unschedulable
-- `dispatch.unschedulable_after_s` after it was queued (orchestrator/src/dispatch/feasible.rs); the partial
-- index keeps that sweep off the (possibly long) queue of ordinary work.
ALTER TABLE jobs ADD COLUMN unschedulable text;
CREATE INDEX jobs_unschedulable_idx ON jobs (created_at) WHERE state = 'queued' AND unschedulable IS NOT NULL;

-- `approvals.decided_by_name`: the display name the platform sent with the approver's click or command (a
-- Telegram username, a Discord global name), so the card names people as the platform does; NULL when none came.
ALTER TABLE approvals ADD COLUMN decided_by_name text;
