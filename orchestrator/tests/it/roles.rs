//! Roles: role × command × template matrix, per-channel overrides, the default role for unknown users, grants
//! from the bootstrap file, role-based approvers, and the audit of every refusal and change.

use cynode_orchestrator::commands::{CommandSettings, Commands};
use cynode_orchestrator::tasks::Origin;
use cynode_orchestrator::team::{self, TeamRole, users};
use cynode_tests::TestDb;
use uuid::Uuid;

use crate::support::dispatcher;

const YAML: &str = "
installs:
  - platform: slack
    name: ops
    team_id: T1
    signing_secret: 8f742231b10e8888abcd99yyyzzz85a5
    bot_token: xoxb-test-token
templates:
  - { name: busybox, image: 'cynode/busybox:latest' }
  - { name: gpu, image: 'cynode/cuda:latest', gpu: true }
  - { name: net, image: 'cynode/busybox:latest', network: true }
policy:
  - when: { network: true }
    approvers: ['role:approver']
teams:
  - install: ops
    default_role: none
    roles: { UADMIN: admin, UAPP: approver, UMEM: member, UVIEW: viewer, UNONE: none }
    channels:
      CPROD: { UMEM: viewer }
    grants:
      member: { templates: [busybox, net], gpu: false }
";

async fn setup(db: &TestDb) -> (Commands, Uuid) {
    let file = cynode_orchestrator::bootstrap::BootstrapFile::parse(YAML, "t").expect("parse");
    let sb =
        cynode_orchestrator::crypto::SecretBox::from_base64(&cynode_orchestrator::crypto::SecretBox::generate_key())
            .expect("key");
    cynode_orchestrator::bootstrap::import(&db.pool, &sb, &file, "t").await.expect("import");
    let install: Uuid =
        sqlx::query_scalar("SELECT id FROM installs WHERE name = 'ops'").fetch_one(&db.pool).await.expect("install");
    (Commands::new(db.pool.clone(), dispatcher(&db.pool), CommandSettings::default()), install)
}

pub(crate) async fn conversation(db: &TestDb, install: Uuid, channel: &str) -> Uuid {
    let id = Uuid::now_v7();
    let thread_ref = serde_json::json!({ "platform": "slack", "install": "T1", "channel": channel, "thread": null });
    sqlx::query("INSERT INTO conversations (id, install_id, channel, thread, thread_ref) VALUES ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(install)
        .bind(channel)
        .bind(id.to_string())
        .bind(thread_ref)
        .execute(&db.pool)
        .await
        .expect("conversation");
    id
}

pub(crate) fn chat(install: Uuid, conversation: Uuid, user: &str) -> Origin {
    Origin {
        install_id: Some(install),
        conversation_id: Some(conversation),
        requester: user.into(),
        source: "chat".into(),
        ..Origin::default()
    }
}

#[tokio::test]
async fn role_command_template_matrix() {
    let db = TestDb::new().await;
    let (c, install) = setup(&db).await;
    let general = conversation(&db, install, "CGEN").await;
    // (user, command) → expected: Ok(()) = accepted (a job, or an answer that is not a refusal), Err(fragment).
    let cases: &[(&str, &str, Result<(), &str>)] = &[
        ("UADMIN", "run echo hi", Ok(())),
        ("UADMIN", "run --template gpu nvidia-smi", Ok(())),
        ("UADMIN", "status", Ok(())),
        ("UAPP", "run --template gpu nvidia-smi", Ok(())),
        ("UAPP", "jobs", Ok(())),
        ("UMEM", "run echo hi", Ok(())),
        ("UMEM", "run --template net curl x", Ok(())),
        ("UMEM", "run --template gpu nvidia-smi", Err("may not run template `gpu` (allowed: busybox, net)")),
        ("UMEM", "ask what is up", Ok(())),
        ("UMEM", "status", Ok(())),
        ("UVIEW", "status", Ok(())),
        ("UVIEW", "jobs", Ok(())),
        (
            "UVIEW",
            "run echo hi",
            Err("Your role here is viewer: it can see `status` and your own jobs (`jobs`), not `run`"),
        ),
        ("UVIEW", "run --template gpu x", Err("role here is viewer")),
        ("UVIEW", "ask hello", Err("not `ask`")),
        ("UVIEW", "cancel deadbeef", Err("not `cancel`")),
        ("UNONE", "status", Err("Your role here is none: it allows nothing but `help`, not `status`")),
        ("UNONE", "run echo hi", Err("role here is none")),
        // Unknown users get the install's default role (`none` here).
        ("USTRANGER", "run echo hi", Err("role here is none")),
        ("USTRANGER", "help", Ok(())),
    ];
    let mut refused = 0;
    for (user, text, want) in cases {
        let r = c.handle(&chat(install, general, user), text).await.expect("handle");
        match want {
            Ok(()) => assert!(!r.refused, "{user} `{text}` should be accepted: {}", r.text),
            Err(fragment) => {
                refused += 1;
                assert!(r.refused && r.text.contains(fragment), "{user} `{text}`: wanted {fragment:?} in {}", r.text);
                assert!(r.job_id.is_none(), "{user} `{text}` created nothing");
            }
        }
    }
    cynode_orchestrator::audit::flush(&db.pool).await.expect("link the audit entries");
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'command.refused'")
        .fetch_one(&db.pool)
        .await
        .expect("audit");
    assert_eq!(audited, refused, "every refusal is audited");
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs").fetch_one(&db.pool).await.expect("jobs");
    assert_eq!(jobs, 6, "exactly the accepted runs and asks made jobs");
}

#[tokio::test]
async fn a_channel_override_and_changes_take_effect_and_are_audited() {
    let db = TestDb::new().await;
    let (c, install) = setup(&db).await;
    let prod = conversation(&db, install, "CPROD").await;
    let general = conversation(&db, install, "CGEN").await;
    // UMEM is a member, but a viewer in #prod.
    let r = c.handle(&chat(install, prod, "UMEM"), "run echo hi").await.expect("run");
    assert!(r.refused && r.text.contains("role here is viewer"), "{}", r.text);
    assert!(!c.handle(&chat(install, general, "UMEM"), "run echo hi").await.expect("run").refused);

    team::set_role(&db.pool, "cli", install, None, "UVIEW", TeamRole::Member).await.expect("promote");
    assert!(!c.handle(&chat(install, general, "UVIEW"), "run echo hi").await.expect("run").refused);
    let s = team::standing(&db.pool, install, Some(prod), "UMEM").await.expect("standing");
    assert_eq!((s.role, s.from), (TeamRole::Viewer, "channel"));
    let s = team::standing(&db.pool, install, Some(general), "USTRANGER").await.expect("standing");
    assert_eq!((s.role, s.from), (TeamRole::None, "default"));
    cynode_orchestrator::audit::flush(&db.pool).await.expect("link the audit entries");
    let detail: serde_json::Value =
        sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'role.set' ORDER BY seq DESC LIMIT 1")
            .fetch_one(&db.pool)
            .await
            .expect("audited");
    assert_eq!((detail["role"].as_str(), detail["before"].as_str()), (Some("member"), Some("viewer")));

    // API requests (tokens have roles of their own) are not subject to chat roles.
    let api = Origin { requester: "UVIEW-token".into(), source: "api".into(), ..Origin::default() };
    assert!(!c.handle(&api, "run echo hi").await.expect("run").refused);
}

#[tokio::test]
async fn role_approvers_and_admin_cancel() {
    let db = TestDb::new().await;
    let (c, install) = setup(&db).await;
    let general = conversation(&db, install, "CGEN").await;
    let r = c.handle(&chat(install, general, "UMEM"), "run --template net curl x").await.expect("run");
    let job = r.job_id.expect("held");
    assert!(r.text.contains("by any approver"), "{}", r.text);
    let no = c.handle(&chat(install, general, "UVIEW"), &format!("approve {job}")).await.expect("approve");
    assert!(no.refused, "{}", no.text);
    let no = c.handle(&chat(install, general, "UMEM"), &format!("approve {job}")).await.expect("approve");
    assert!(no.refused && no.text.contains("not an approver"), "a member is not an approver: {}", no.text);
    let yes = c.handle(&chat(install, general, "UAPP"), &format!("approve {job}")).await.expect("approve");
    assert!(!yes.refused, "{}", yes.text);
    // An approver's own job needs someone else: here the admin (admins count as approvers).
    let job = c.handle(&chat(install, general, "UAPP"), "run --template net curl y").await.expect("run").job_id;
    let job = job.expect("held");
    let no = c.handle(&chat(install, general, "UAPP"), &format!("approve {job}")).await.expect("approve");
    assert!(no.refused && no.text.contains("You requested job"), "{}", no.text);
    let yes = c.handle(&chat(install, general, "UADMIN"), &format!("approve {job}")).await.expect("approve");
    assert!(!yes.refused, "{}", yes.text);

    let job = c.handle(&chat(install, general, "UMEM"), "run sleep 100").await.expect("run").job_id.expect("job");
    let r = c.handle(&chat(install, general, "UAPP"), &format!("cancel {job}")).await.expect("cancel");
    assert!(r.refused && r.text.contains("not yours"), "an approver role is not an admin: {}", r.text);
    let r = c.handle(&chat(install, general, "UADMIN"), &format!("cancel {job}")).await.expect("cancel");
    assert!(!r.refused && r.text.contains("cancelled before it started"), "{}", r.text);
}

#[tokio::test]
async fn users_link_identities_and_tokens() {
    let db = TestDb::new().await;
    let (_, install) = setup(&db).await;
    users::link_identity(&db.pool, "cli", "alice", "ops", "UMEM", Some("Alice")).await.expect("link");
    users::link_identity(&db.pool, "cli", "alice", &install.to_string(), "UAPP", None).await.expect("second");
    cynode_orchestrator::api_tokens::create(
        &db.pool,
        "cli",
        "alice-ci",
        None,
        cynode_orchestrator::api_tokens::Role::Operator,
    )
    .await
    .expect("token");
    users::link_token(&db.pool, "cli", "alice", "alice-ci").await.expect("token link");
    let e = users::link_identity(&db.pool, "cli", "bob", "ops", "UMEM", None).await.expect_err("taken");
    assert!(e.to_string().contains("linked to CyNode user `alice`"), "{e}");
    let e = users::link_identity(&db.pool, "cli", "bob", "nope", "U1", None).await.expect_err("install");
    assert!(e.to_string().contains("no install `nope`"), "{e}");
    let e = users::link_token(&db.pool, "cli", "bob", "missing").await.expect_err("token");
    assert!(e.to_string().contains("no live API token `missing`"), "{e}");
    let alice = users::show(&db.pool, "alice", None).await.expect("show").expect("alice");
    let ids: Vec<&str> = alice.identities.iter().map(|i| i.user_id.as_str()).collect();
    assert_eq!(ids, ["UAPP", "UMEM"]);
    assert_eq!(alice.identities[1].display_name.as_deref(), Some("Alice"));
    assert_eq!(alice.tokens, ["alice-ci"]);
    assert_eq!(alice.roles.len(), 3, "install-wide roles of both identities and UMEM's channel override");
    let listed = users::list(&db.pool, None).await.expect("list");
    assert_eq!(listed.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), ["alice"], "bob was never created");
    cynode_orchestrator::audit::flush(&db.pool).await.expect("link the audit entries");
    let links: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action LIKE 'user.link%'")
        .fetch_one(&db.pool)
        .await
        .expect("audit");
    assert_eq!(links, 3);
}

#[tokio::test]
async fn a_bad_team_section_is_refused_at_import() {
    for (from, to, want) in [
        ("default_role: none", "default_role: admin", "default_role is member, viewer or none"),
        ("UNONE: none", "UNONE: boss", "`boss` is not a role"),
        ("  - install: ops\n    default_role", "  - install: nope\n    default_role", "no install named `nope`"),
    ] {
        let yaml = YAML.replace(from, to);
        assert_ne!(yaml, YAML, "{from}");
        let e = cynode_orchestrator::bootstrap::BootstrapFile::parse(&yaml, "team.yaml").expect_err("invalid");
        assert!(e.to_string().contains(want) && e.to_string().contains("teams[0]"), "{e}");
    }
}
