use cynode_orchestrator::bootstrap::{BootstrapError, BootstrapFile, ImportReport, import};
use cynode_orchestrator::crypto::SecretBox;
use cynode_tests::TestDb;

pub const EXAMPLE: &str = include_str!("../../../docs/examples/cynode.yaml");

fn secret_box() -> SecretBox {
    SecretBox::from_base64(&SecretBox::generate_key()).expect("key")
}

#[tokio::test]
async fn example_file_imports_idempotently() {
    let db = TestDb::new().await;
    let sb = secret_box();
    let file = BootstrapFile::parse(EXAMPLE, "cynode.yaml").expect("example parses");
    let first = import(&db.pool, &sb, &file, "cynode.yaml").await.expect("first import");
    assert!(first.created >= 8, "{first:?}");
    assert_eq!(first.updated, 0);

    let second = import(&db.pool, &sb, &file, "cynode.yaml").await.expect("second import");
    assert_eq!(second, ImportReport { created: 0, updated: 0, unchanged: first.created });

    let installs: i64 = sqlx::query_scalar("SELECT count(*) FROM installs").fetch_one(&db.pool).await.expect("count");
    assert_eq!(installs, i64::try_from(file.installs.len()).expect("len"));
    // One audit entry for the import that changed something, none for the one that did not.
    cynode_orchestrator::audit::flush(&db.pool).await.expect("link the audit entries");
    let audits: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'bootstrap.import'")
        .fetch_one(&db.pool)
        .await
        .expect("audit");
    assert_eq!(audits, 1);
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest() {
    let db = TestDb::new().await;
    let file = BootstrapFile::parse(EXAMPLE, "cynode.yaml").expect("parse");
    import(&db.pool, &secret_box(), &file, "x").await.expect("import");
    let rows: Vec<(serde_json::Value, Vec<u8>)> =
        sqlx::query_as("SELECT settings, secrets FROM installs").fetch_all(&db.pool).await.expect("rows");
    for (settings, sealed) in rows {
        let text = String::from_utf8_lossy(&sealed);
        for needle in ["xoxb-", "8f742231b10e8888abcd99yyyzzz85a5", "whsec_", "telegram-secret"] {
            assert!(!text.contains(needle), "plaintext secret {needle} stored");
            assert!(!settings.to_string().contains(needle), "secret {needle} in settings");
        }
    }
    let keys: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT key_hash FROM node_keys").fetch_all(&db.pool).await.expect("keys");
    assert!(keys.iter().all(|k| k.len() == 32), "node keys are stored as SHA-256 hashes");
}

#[tokio::test]
async fn changed_values_are_updated_and_others_left_alone() {
    let db = TestDb::new().await;
    let sb = secret_box();
    let file = BootstrapFile::parse(EXAMPLE, "a").expect("parse");
    let first = import(&db.pool, &sb, &file, "a").await.expect("import");
    let changed = EXAMPLE.replace("xoxb-example-bot-token", "xoxb-rotated-bot-token");
    assert_ne!(changed, EXAMPLE, "the example must contain the token this test rotates");
    let file = BootstrapFile::parse(&changed, "b").expect("parse");
    let second = import(&db.pool, &sb, &file, "b").await.expect("import");
    assert_eq!(second.updated, 1, "{second:?}");
    assert_eq!(second.unchanged, first.created - 1);
}

#[tokio::test]
async fn another_master_key_cannot_read_stored_secrets() {
    let db = TestDb::new().await;
    let file = BootstrapFile::parse(EXAMPLE, "a").expect("parse");
    import(&db.pool, &secret_box(), &file, "a").await.expect("import");
    let err = import(&db.pool, &secret_box(), &file, "a").await.expect_err("wrong key");
    assert!(matches!(err, BootstrapError::Crypto(_)), "{err}");
    assert!(err.to_string().contains("wrong master key"), "{err}");
}

#[test]
fn corrupt_and_invalid_files_give_one_clear_line() {
    let cases: &[(&str, &str)] = &[
        ("installs: [", "bootstrap file f.yaml: "),
        ("installs:\n  - platform: slack\n    name: a\n", "missing field `team_id`"),
        ("nodes: []\n", "unknown field `nodes`"),
        ("installs:\n  - platform: irc\n    name: a\n", "unknown variant `irc`"),
        (
            "installs:\n  - {platform: discord, name: d, application_id: '1', public_key: zz, bot_token: t}\n",
            "public_key must be",
        ),
        (
            "installs:\n  - {platform: telegram, name: t, bot: b, username: u, bot_token: x, secret_token: 'a b'}\n",
            "secret_token must be 1–256",
        ),
        ("installs:\n  - {platform: webhook, name: w, endpoint: ci, scheme: standard, secrets: [nope]}\n", "whsec_"),
        ("subscriptions:\n  - {name: s, url: 'ftp://x', secrets: []}\n", "is not an http(s) URL"),
        ("node_keys:\n  - {name: n, key: short}\n", "at least 24 characters"),
        ("policy:\n  - {install: ghost}\n", "no install named `ghost`"),
    ];
    for (text, want) in cases {
        let err = BootstrapFile::parse(text, "f.yaml").expect_err(text).to_string();
        assert!(err.contains(want), "for {text:?}: {err}");
        assert!(err.starts_with("bootstrap file f.yaml"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }
}

#[test]
fn secrets_never_appear_in_errors_or_debug() {
    let text = "installs:\n  - {platform: telegram, name: t, bot: b, username: u, bot_token: 'sekrit-token', secret_token: 'bad token!'}\n";
    let err = BootstrapFile::parse(text, "f").expect_err("invalid").to_string();
    assert!(!err.contains("sekrit") && !err.contains("bad token"), "{err}");
    let ok = BootstrapFile::parse(EXAMPLE, "f").expect("parse");
    let dbg = format!("{ok:?}");
    assert!(!dbg.contains("xoxb-example-bot-token"), "Debug leaks a secret");
}
