-- Team mode: CyNode users (principals) that link chat identities and API tokens, roles per install with
-- per-channel overrides, and each install's default role and per-role grants.
CREATE TABLE principals (
    id            uuid PRIMARY KEY,
    name          text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 80),
    display_name  text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- A chat identity is (platform, install, user id); the install implies the platform.
CREATE TABLE chat_identities (
    install_id    uuid NOT NULL REFERENCES installs (id),
    user_id       text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 255),
    principal_id  uuid NOT NULL REFERENCES principals (id),
    display_name  text,
    linked_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (install_id, user_id)
);
CREATE INDEX chat_identities_principal_idx ON chat_identities (principal_id);

ALTER TABLE api_tokens ADD COLUMN principal_id uuid REFERENCES principals (id);

-- A role for a chat user of an install; channel '' is the whole install, another value overrides it there.
CREATE TABLE role_grants (
    install_id    uuid NOT NULL REFERENCES installs (id),
    channel       text NOT NULL DEFAULT '',
    user_id       text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'approver', 'member', 'viewer', 'none')),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (install_id, channel, user_id)
);

-- The role of chat users nobody granted one, and what each role may use (absent: the built-in grants).
CREATE TABLE team_settings (
    install_id    uuid PRIMARY KEY REFERENCES installs (id),
    default_role  text NOT NULL DEFAULT 'member' CHECK (default_role IN ('member', 'viewer', 'none')),
    grants        jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
