use std::io::Write as _;

use cynode_gateway::config::{Config, ConfigError, LogFormat, Overrides};
use secrecy::ExposeSecret as _;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("tmp");
    f.write_all(text.as_bytes()).expect("write");
    f
}

#[test]
fn file_then_environment_then_flags() {
    let f = file(
        "listen: 127.0.0.1:9000\ndatabase:\n  max_connections: 4\n  url: postgres://file@h/db\nlog:\n  format: json\n",
    );
    let c = Config::load(Some(f.path()), env(&[]), &Overrides::default()).expect("file only");
    assert_eq!(c.listen.port(), 9000);
    assert_eq!(c.database.max_connections, 4);
    assert_eq!(c.log.format, LogFormat::Json);

    let e = env(&[
        ("CYNODE__DATABASE__MAX_CONNECTIONS", "12"),
        ("DATABASE_URL", "postgres://conventional@h/db"),
        ("CYNODE__LISTEN", "127.0.0.1:9100"),
        ("RUST_LOG", "debug"),
        ("UNRELATED", "ignored"),
    ]);
    let c = Config::load(Some(f.path()), e.clone(), &Overrides::default()).expect("env over file");
    assert_eq!(c.listen.port(), 9100);
    assert_eq!(c.database.max_connections, 12);
    assert_eq!(c.database.url.as_ref().expect("url").expose_secret(), "postgres://conventional@h/db");
    assert_eq!(c.log.filter, "debug");

    let mut e2 = e.clone();
    e2.push(("CYNODE__DATABASE__URL".into(), "postgres://explicit@h/db".into()));
    let c = Config::load(Some(f.path()), e2, &Overrides::default()).expect("CYNODE__ wins");
    assert_eq!(c.database.url.as_ref().expect("url").expose_secret(), "postgres://explicit@h/db");

    let flags = Overrides { listen: Some("127.0.0.1:9200".parse().expect("addr")), ..Overrides::default() };
    let c = Config::load(Some(f.path()), e, &flags).expect("flags over env");
    assert_eq!(c.listen.port(), 9200);
}

#[test]
fn unknown_keys_are_rejected_and_their_source_named() {
    let f = file("database:\n  urll: postgres://x@y/z\n");
    let err = Config::load(Some(f.path()), env(&[]), &Overrides::default()).expect_err("typo in file");
    let msg = err.to_string();
    assert!(matches!(err, ConfigError::Invalid { .. }));
    assert!(msg.contains("unknown field `urll`") && msg.contains(&f.path().display().to_string()), "{msg}");

    let err =
        Config::load(None, env(&[("CYNODE__LIMITS__MAX_BODY", "5")]), &Overrides::default()).expect_err("env typo");
    let msg = err.to_string();
    assert!(msg.contains("unknown field `max_body`") && msg.contains("CYNODE__LIMITS__MAX_BODY"), "{msg}");

    let err = Config::load(None, env(&[("CYNODE__NOPE", "1")]), &Overrides::default()).expect_err("unknown section");
    assert!(err.to_string().contains("unknown field `nope`"), "{err}");
}

#[test]
fn wrong_types_name_the_key() {
    let err = Config::load(None, env(&[("CYNODE__DATABASE__MAX_CONNECTIONS", "many")]), &Overrides::default())
        .expect_err("bad type");
    let msg = err.to_string();
    assert!(msg.contains("`database.max_connections`") && msg.contains("CYNODE__DATABASE__MAX_CONNECTIONS"), "{msg}");

    let err = Config::load(None, env(&[("CYNODE_LOG_FORMAT", "xml")]), &Overrides::default()).expect_err("bad enum");
    assert!(err.to_string().contains("unknown variant `xml`"), "{err}");

    let f = file("listen: [\n");
    let err = Config::load(Some(f.path()), env(&[]), &Overrides::default()).expect_err("bad yaml");
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    let f = file("- just\n- a list\n");
    let err = Config::load(Some(f.path()), env(&[]), &Overrides::default()).expect_err("not a mapping");
    assert!(err.to_string().contains("must be a mapping"), "{err}");
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let e = env(&[
        ("DATABASE_URL", "postgres://u:hunter2@h/db"),
        ("CYNODE__SECURITY__MASTER_KEY", "c2VjcmV0LWtleS1tYXRlcmlhbA=="),
    ]);
    let c = Config::load(None, e, &Overrides::default()).expect("load");
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("hunter2") && !dbg.contains("c2VjcmV0"), "{dbg}");
}

#[test]
fn missing_file_is_a_clear_error() {
    let err = Config::load(Some(std::path::Path::new("/nonexistent/cynode.yaml")), env(&[]), &Overrides::default())
        .expect_err("missing");
    assert!(err.to_string().starts_with("cannot read config file /nonexistent/cynode.yaml"), "{err}");
}
