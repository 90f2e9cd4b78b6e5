-- Body hashes of inbound webhook deliveries whose delivery id is not signed (GitHub's X-GitHub-Delivery, ids
-- under the plain HMAC scheme): a captured body replayed with a fresh id within the replay window
-- (`ingress.webhook_replay_window_s`) is recorded as a duplicate. One row per install and distinct body; the
-- recorder re-stamps a row when the same body comes back after the window.
CREATE TABLE inbound_replay_keys (
    install_id  uuid NOT NULL REFERENCES installs (id) ON DELETE CASCADE,
    body_sha256 text NOT NULL CHECK (body_sha256 ~ '^[0-9a-f]{64}$'),
    seen_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (install_id, body_sha256)
);
