//! Configuration tests.

use clap::Parser as _;
use secrecy::ExposeSecret as _;

use super::*;
use crate::cli::{Cli, Command};

fn run_args(args: &[&str]) -> RunArgs {
    let argv = ["cynode-node", "run"].iter().chain(args).copied();
    match Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{e}")).command {
        Command::Run(r) => r,
        other => panic!("parsed {other:?}"),
    }
}

fn env_with_key() -> Env {
    Env::from_pairs([("CYNODE_NODE_KEY", "k3y-0123456789-abcdefghij"), ("HOSTNAME", "ignored-when-etc-hostname")])
}

#[test]
fn defaults_and_flags_are_combined() {
    let args = run_args(&[
        "--orchestrator",
        "http://10.0.0.1:9000",
        "--name",
        "gpu-1",
        "--template",
        "py=cynode/python:3",
        "--label",
        "zone=eu",
        "--max-jobs",
        "4",
        "--enable-host-executor",
    ]);
    let c = AgentConfig::from_cli(&args, &env_with_key()).expect("valid");
    assert_eq!(c.orchestrator_url, "http://10.0.0.1:9000");
    assert_eq!(c.name, "gpu-1");
    assert_eq!(c.executors.owner, "cynode-node-gpu-1");
    assert!(c.executors.docker && c.executors.host);
    assert_eq!(c.executors.templates, vec![Template { name: "py".into(), image: "cynode/python:3".into() }]);
    assert_eq!(c.labels.get("zone").map(String::as_str), Some("eu"));
    assert_eq!(c.max_concurrent_jobs, 4);
    assert_eq!(c.node_key.expose_secret(), "k3y-0123456789-abcdefghij");
}

#[test]
fn environment_fills_in_what_flags_leave_out() {
    let env = Env::from_pairs([
        ("CYNODE_NODE_KEY", "k3y-0123456789-abcdefghij"),
        ("CYNODE_ORCHESTRATOR_URL", "https://cynode.example.com"),
        ("CYNODE_NODE_NAME", "worker-7"),
        ("DOCKER_HOST", "tcp://127.0.0.1:2375"),
    ]);
    let c = AgentConfig::from_cli(&run_args(&[]), &env).expect("valid");
    assert_eq!(c.orchestrator_url, "https://cynode.example.com");
    assert_eq!(c.name, "worker-7");
    assert_eq!(c.executors.docker_endpoint.as_deref(), Some("tcp://127.0.0.1:2375"));
    assert_eq!(c.executors.templates[0].name, DEFAULT_TEMPLATE.0);
    assert!(!c.executors.host, "the host executor is never on by default");
    assert_eq!(c.max_concurrent_jobs, DEFAULT_MAX_JOBS);
}

#[test]
fn the_key_comes_from_a_file_and_is_never_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("key");
    std::fs::write(&path, "file-key-0123456789-abcdef\n").expect("write");
    let args = run_args(&["--key-file", path.to_str().expect("utf-8")]);
    let c = AgentConfig::from_cli(&args, &Env::default()).expect("valid");
    assert_eq!(c.node_key.expose_secret(), "file-key-0123456789-abcdef");
    assert!(!format!("{c:?}").contains("file-key"), "Debug must not print the key");
    let env = env_with_key();
    assert!(!format!("{env:?}").contains("k3y"), "Debug of the environment shows names only");
}

#[test]
fn the_key_is_not_an_argument() {
    assert!(Cli::try_parse_from(["cynode-node", "run", "--key", "secret"]).is_err());
}

#[test]
fn problems_are_explained() {
    let err = |args: &[&str], env: &Env| AgentConfig::from_cli(&run_args(args), env).expect_err("invalid").to_string();
    assert!(err(&[], &Env::default()).contains("CYNODE_NODE_KEY"));
    assert!(err(&["--template", "busybox"], &env_with_key()).contains("NAME=IMAGE"));
    assert!(err(&["--label", "=x"], &env_with_key()).contains("KEY=VALUE"));
    assert!(err(&["--orchestrator", "ftp://x"], &env_with_key()).contains("http://"));
    assert!(err(&["--orchestrator", "http://u:p@x"], &env_with_key()).contains("no credentials"));
    assert!(err(&["--max-jobs", "0"], &env_with_key()).contains("between 1 and 256"));
    assert!(err(&["--no-docker"], &env_with_key()).contains("--enable-host-executor"));
    let spaced = Env::from_pairs([("CYNODE_NODE_KEY", "two words")]);
    let msg = err(&[], &spaced);
    assert!(msg.contains("printable ASCII") && !msg.contains("two words"), "{msg}");
    let missing = err(&["--key-file", "/nonexistent/cynode-key"], &Env::default());
    assert!(missing.contains("/nonexistent/cynode-key"), "{missing}");
}

#[test]
fn log_settings_come_from_the_environment() {
    let env = Env::from_pairs([("RUST_LOG", "debug"), ("CYNODE_LOG_FORMAT", "JSON")]);
    assert_eq!(env.log(), LogSettings { filter: "debug".into(), json: true });
    assert_eq!(Env::default().log(), LogSettings { filter: "info".into(), json: false });
}

#[test]
fn warm_pool_defaults_to_two_per_template_and_can_be_disabled() {
    let c = AgentConfig::from_cli(&run_args(&[]), &env_with_key()).expect("valid");
    assert_eq!(c.executors.warm_pool, DEFAULT_WARM_POOL);
    assert_eq!(DEFAULT_WARM_POOL, 2);
    let c = AgentConfig::from_cli(&run_args(&["--warm-pool", "0"]), &env_with_key()).expect("valid");
    assert_eq!(c.executors.warm_pool, 0);
    let err = AgentConfig::from_cli(&run_args(&["--warm-pool", "65"]), &env_with_key()).expect_err("too many");
    assert!(err.to_string().contains("--warm-pool"), "{err}");
}
