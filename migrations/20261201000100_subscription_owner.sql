-- Subscriptions get an owner: the install (tenant) whose API token created them. A subscription with an owner
-- receives only events whose payload names that install (`install_id` at the top level of `data`), and tokens
-- scoped to another install cannot see it. NULL = global (created by an unscoped token or the bootstrap file).
ALTER TABLE subscriptions ADD COLUMN install_id uuid REFERENCES installs (id);
CREATE INDEX subscriptions_install_idx ON subscriptions (install_id) WHERE install_id IS NOT NULL;
