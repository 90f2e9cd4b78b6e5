//! OpenAPI schemas of `/v1/users` and `/v1/roles` (see [`super::openapi`]).

use serde_json::{Map, Value, json};

use super::openapi::{obj, s};

const INSTALL_ID: &str = "0193a6f1-0000-7000-8000-0000000000a1";
const USER_ID: &str = "0193a6f1-0000-7000-8000-0000000000b2";

/// Adds the team schemas to `m`.
pub(super) fn add(m: &mut Map<String, Value>) {
    let uuid = json!({ "type": "string", "format": "uuid" });
    let ostr = |d: &str| json!({ "type": ["string", "null"], "description": d });
    let role = json!({ "enum": ["admin", "approver", "member", "viewer", "none"] });
    let identity = json!({ "platform": "slack", "install_id": INSTALL_ID, "install": "acme", "user_id": "U0123",
                           "display_name": "Alice", "platform_name": "alice.l" });
    let grant = json!({ "install_id": INSTALL_ID, "channel": "", "user_id": "U0123", "role": "admin" });
    let user = json!({ "id": USER_ID, "name": "alice", "display_name": null, "identities": [identity.clone()],
                       "tokens": ["alice-ci"], "roles": [{ "install": "acme", "channel": "", "role": "admin" }] });
    m.insert(
        "Identity".into(),
        obj(
            &["platform", "install_id", "install", "user_id", "display_name", "platform_name"],
            json!({ "platform": s("Platform of the install"), "install_id": uuid, "install": s("Install name"),
                    "user_id": s("The platform's user id"),
                    "display_name": ostr("Set by an admin (shown first)"),
                    "platform_name": ostr("As the platform last sent it (Discord nickname or global name, \
                                           Telegram username or first and last name)") }),
            identity,
        ),
    );
    m.insert(
        "UserRole".into(),
        obj(
            &["install", "channel", "role"],
            json!({ "install": s("Install name"), "channel": s("Channel of an override; \"\" = the whole install"),
                    "role": role }),
            json!({ "install": "acme", "channel": "C042", "role": "viewer" }),
        ),
    );
    m.insert(
        "User".into(),
        obj(
            &["id", "name", "display_name", "identities", "tokens", "roles"],
            json!({ "id": uuid, "name": s("Unique name"), "display_name": ostr("Set by an admin"),
                    "identities": { "type": "array", "items": { "$ref": "#/components/schemas/Identity" } },
                    "tokens": { "type": "array", "items": { "type": "string" },
                                "description": "Names of linked live API tokens" },
                    "roles": { "type": "array", "items": { "$ref": "#/components/schemas/UserRole" } } }),
            user.clone(),
        ),
    );
    m.insert(
        "UserList".into(),
        obj(
            &["users"],
            json!({ "users": { "type": "array", "items": { "$ref": "#/components/schemas/User" } } }),
            json!({ "users": [user] }),
        ),
    );
    m.insert(
        "LinkIdentityRequest".into(),
        obj(
            &["user_id"],
            json!({ "install": s("Install id, name or external id (default: the token's install)"),
                    "user_id": s("The platform's user id"), "display_name": s("Display name to set") }),
            json!({ "user_id": "U0123", "display_name": "Alice" }),
        ),
    );
    m.insert(
        "RoleGrant".into(),
        obj(
            &["install_id", "channel", "user_id", "role"],
            json!({ "install_id": uuid, "channel": s("Channel of an override; \"\" = the whole install"),
                    "user_id": s("The platform's user id"), "role": role }),
            grant.clone(),
        ),
    );
    m.insert(
        "RoleList".into(),
        obj(
            &["roles"],
            json!({ "roles": { "type": "array", "items": { "$ref": "#/components/schemas/RoleGrant" } } }),
            json!({ "roles": [grant] }),
        ),
    );
    let list = |d: &str| json!({ "type": "array", "items": { "type": "string" }, "description": d });
    let flag = |d: &str| json!({ "type": "boolean", "description": d });
    let grant_spec = json!({ "templates": ["busybox"], "gpu": false, "models": ["default"], "tools": ["read_thread"] });
    m.insert(
        "RoleGrantSpec".into(),
        obj(
            &[],
            json!({ "commands": list("Commands the role may use (replaces the built-in list)"),
                    "templates": list("Sandbox templates the role may run"),
                    "gpu": flag("Whether the role may run jobs that use a GPU"),
                    "network": flag("Whether the role may run jobs with network access"),
                    "models": list("Models for ask and agent turns (`default`: the node's default)"),
                    "tools": list("Agent tools the role grants") }),
            grant_spec.clone(),
        ),
    );
    let grants = json!({ "type": "object", "additionalProperties": { "$ref": "#/components/schemas/RoleGrantSpec" },
                         "description": "Role name → what it may use; absent roles and fields do not restrict" });
    m.insert(
        "TeamSettings".into(),
        obj(
            &["install_id", "default_role", "grants"],
            json!({ "install_id": uuid, "default_role": { "enum": ["member", "viewer", "none"] },
                    "grants": grants.clone() }),
            json!({ "install_id": INSTALL_ID, "default_role": "viewer", "grants": { "member": grant_spec.clone() } }),
        ),
    );
    m.insert(
        "TeamSettingsRequest".into(),
        obj(
            &[],
            json!({ "install": s("Install id, name or external id (default: the token's install)"),
                    "default_role": { "enum": ["member", "viewer", "none"], "description": "Default: member" },
                    "grants": grants }),
            json!({ "default_role": "viewer", "grants": { "member": grant_spec } }),
        ),
    );
    m.insert(
        "SetRoleRequest".into(),
        obj(
            &["user", "role"],
            json!({ "install": s("Install id, name or external id (default: the token's install)"),
                    "user": s("The platform's user id"), "role": role,
                    "channel": s("Only in this channel (overrides the install-wide role there)") }),
            json!({ "user": "U0123", "role": "approver" }),
        ),
    );
}
