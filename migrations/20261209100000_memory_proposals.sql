-- Install-wide memory written by someone who is not an approver is a proposal: stored, but recalled by no one
-- until an approver of the install approves it (`approve <id>` in chat, `cynode memory approve`, or
-- `POST /v1/memories/{id}/approve`). A denied or withdrawn proposal is deleted; an undecided one expires (its
-- `expires_at` is set when it is proposed) and the memory worker purges it like any expired memory.
ALTER TABLE memories ADD COLUMN awaiting_approval boolean NOT NULL DEFAULT false;
CREATE INDEX memories_proposals_idx ON memories (install_id, created_at) WHERE awaiting_approval;
