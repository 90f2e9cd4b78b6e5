//! A sandbox job on the real container engine.

use std::time::Duration;

use cynode_node_agent::executor::docker::{LABEL_OWNER, connect};
use cynode_node_agent::images::build_busybox_image;
use cynode_protocol::{JobSpec, Requirements, SandboxLimits, SandboxSpec};
use uuid::Uuid;

use crate::support::{E2E_IMAGE, NODE_KEY, Server};

fn sandbox(image: &str, command: &str) -> JobSpec {
    JobSpec::Sandbox(SandboxSpec {
        template: "busybox".into(),
        image: image.into(),
        command: command.into(),
        network: false,
        env: vec![],
        limits: SandboxLimits { timeout_s: 60, ..SandboxLimits::default() },
        gpu: false,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_job_runs_on_the_engine_and_its_output_and_exit_code_are_stored() {
    let engine = connect().await.unwrap_or_else(|e| {
        panic!("this test needs a reachable Docker engine (or Podman's Docker-compatible socket): {e}")
    });
    build_busybox_image(&engine, E2E_IMAGE).await.unwrap_or_else(|e| panic!("building {E2E_IMAGE}: {e}"));
    let server = Server::start(&[]).await;
    let owner = format!("cynode-e2e-{}", Uuid::new_v4());
    let template = format!("busybox={E2E_IMAGE}");
    let mut node = server.node("docker-1", &["--template", &template, "--owner", &owner], NODE_KEY).await;

    let needs_busybox = Requirements { template: Some("busybox".into()), ..Requirements::default() };
    let command = "echo hello from the sandbox; id -u; echo oops >&2; exit 3";
    let (_, job) = server.enqueue(sandbox(E2E_IMAGE, command), needs_busybox.clone()).await;
    let (_, evil) = server.enqueue(sandbox("evil/image:latest", "true"), needs_busybox).await;

    let row = server.wait_job(job, Duration::from_secs(30), |j| j.state == "failed").await;
    let result = row.result.expect("result");
    assert_eq!((result["status"].as_str(), result["exit_code"].as_i64()), (Some("failed"), Some(3)), "{result}");
    assert_eq!(server.output(job, 1, "stdout").await, "hello from the sandbox\n65534\n");
    assert_eq!(server.output(job, 1, "stderr").await, "oops\n");

    let row = server.wait_job(evil, Duration::from_secs(10), |j| j.state == "failed").await;
    let result = row.result.expect("result");
    assert_eq!(result["status"].as_str(), Some("rejected"), "{result}");
    let message = result["message"].as_str().unwrap_or_default();
    assert!(message.contains("evil/image:latest") && message.contains(E2E_IMAGE), "{message}");

    // A node stopped with SIGTERM removes its warm pool: nothing with its owner label is left.
    node.signal("TERM");
    assert_eq!(node.wait_exit(Duration::from_secs(60)).await, Some(0));
    let left = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label={LABEL_OWNER}={owner}")])
        .output()
        .expect("docker ps");
    assert!(left.status.success(), "docker ps failed");
    let left = String::from_utf8_lossy(&left.stdout).into_owned();
    assert!(left.trim().is_empty(), "containers of the stopped node left behind: {left}");
}
