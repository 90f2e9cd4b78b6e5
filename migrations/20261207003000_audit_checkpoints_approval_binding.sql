-- Signed checkpoints of the audit chain head. Each signs (seq, hash of the entry at seq, time) with the Ed25519
-- key from the gateway's configuration, so someone with database access who rewrites the chain consistently
-- (recomputing every hash after the change) still cannot make it match a checkpoint.
CREATE TABLE audit_checkpoints (
    seq           bigint PRIMARY KEY,
    hash          bytea NOT NULL,
    at            timestamptz NOT NULL,
    public_key    bytea NOT NULL,
    signature     bytea NOT NULL
);
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- Approvals bound to the job: the SHA-256 of the job's canonical spec when approval was requested, how many
-- distinct approvers must approve, and whether the requester may be one of them.
ALTER TABLE approvals
    ADD COLUMN spec_hash bytea,
    ADD COLUMN required integer NOT NULL DEFAULT 1 CHECK (required >= 1),
    ADD COLUMN requester_may_approve boolean NOT NULL DEFAULT false;

-- One vote per approver and approval, with the spec hash the approver saw.
CREATE TABLE approval_votes (
    approval_id   uuid NOT NULL REFERENCES approvals (id),
    approver      text NOT NULL,
    verdict       text NOT NULL CHECK (verdict IN ('approve', 'deny')),
    spec_hash     bytea NOT NULL,
    at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (approval_id, approver)
);
