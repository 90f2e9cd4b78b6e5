//! Failure modes of the embedded PostgreSQL launcher that a user can cause.

use std::os::unix::fs::MetadataExt as _;

use cynode_orchestrator::store::embedded::{
    EmbeddedError, EmbeddedOptions, EmbeddedPostgres, Ownership, effective_uid,
};

fn opts(dir: &std::path::Path) -> EmbeddedOptions {
    EmbeddedOptions {
        data_dir: dir.to_path_buf(),
        pg_bin: None,
        cache_dir: if effective_uid() == 0 {
            "/var/cache/cynode".into()
        } else {
            std::path::PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/cynode")
        },
        server_user: "cynode".into(),
        ownership: Ownership::Exclusive,
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("cynode-embedded-").tempdir_in("/tmp").expect("tempdir")
}

#[tokio::test]
async fn a_directory_that_is_not_a_cluster_is_left_alone() {
    let dir = tmp();
    let pg = dir.path().join("pg");
    std::fs::create_dir_all(&pg).expect("mkdir");
    std::fs::write(pg.join("precious.txt"), "keep me").expect("write");
    if effective_uid() == 0 {
        let u = cynode_orchestrator::store::embedded::ensure_user("cynode").await.expect("user");
        u.chown(&pg).expect("chown");
    }
    let err = EmbeddedPostgres::start(&opts(dir.path()), &|_| {}).await.expect_err("must refuse");
    assert!(matches!(err, EmbeddedError::DataDir(_)), "{err}");
    assert!(err.to_string().contains("holds no PostgreSQL cluster"), "{err}");
    assert_eq!(std::fs::read_to_string(pg.join("precious.txt")).expect("still there"), "keep me");
}

#[tokio::test]
async fn a_cluster_owned_by_someone_else_is_refused_with_the_fix() {
    let dir = tmp();
    let pg = dir.path().join("pg");
    std::fs::create_dir_all(&pg).expect("mkdir");
    if effective_uid() == 0 {
        // Root can give the directory to a third account; the server user is `cynode`.
        std::os::unix::fs::chown(&pg, Some(4242), Some(4242)).expect("chown");
    } else {
        // A normal user cannot chown; a directory owned by root plays "someone else".
        let root_owned = std::path::Path::new("/var/lib");
        assert_eq!(std::fs::metadata(root_owned).expect("meta").uid(), 0);
        let err = EmbeddedPostgres::start(&opts(root_owned), &|_| {}).await.expect_err("must refuse");
        assert!(err.to_string().contains("owned by"), "{err}");
        return;
    }
    let err = EmbeddedPostgres::start(&opts(dir.path()), &|_| {}).await.expect_err("must refuse");
    let msg = err.to_string();
    assert!(msg.contains("is owned by uid 4242") && msg.contains("chown -R"), "{msg}");
}

#[tokio::test]
async fn an_explicit_binary_directory_must_be_complete() {
    let dir = tmp();
    let mut o = opts(dir.path());
    o.pg_bin = Some(dir.path().join("nothing-here"));
    let err = EmbeddedPostgres::start(&o, &|_| {}).await.expect_err("must refuse");
    assert!(err.to_string().contains("does not contain initdb, pg_ctl and postgres"), "{err}");
}
