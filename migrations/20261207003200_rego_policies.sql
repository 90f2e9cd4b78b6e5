-- Policy as code: a Rego policy per install (install_id NULL: every install without its own), evaluated
-- in-process for each job. `shadow` only records what it would decide; `enforce` decides (the YAML rules in
-- policy_rules are the built-in policy otherwise). `on_error` says what an evaluation error does in enforce mode.
CREATE TABLE rego_policies (
    id            uuid PRIMARY KEY,
    install_id    uuid REFERENCES installs (id),
    name          text NOT NULL,
    source        text NOT NULL,
    mode          text NOT NULL DEFAULT 'shadow' CHECK (mode IN ('shadow', 'enforce')),
    on_error      text NOT NULL DEFAULT 'closed' CHECK (on_error IN ('closed', 'open')),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX rego_policies_scope_idx ON rego_policies ((coalesce(install_id, '00000000-0000-0000-0000-000000000000'::uuid)));
