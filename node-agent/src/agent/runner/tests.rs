//! Spec conversion and routing tests.

use cynode_protocol::SandboxLimits;
use uuid::Uuid;

use super::*;

fn lease() -> Lease {
    Lease {
        job_id: Uuid::new_v4(),
        attempt: 2,
        lease_token: Uuid::new_v4(),
        lease_ttl_ms: 4000,
        spec: JobSpec::Host(proto::HostSpec { command: "true".into(), timeout_s: 1, max_output_bytes: 1 }),
    }
}

fn spec(template: &str, image: &str) -> proto::SandboxSpec {
    proto::SandboxSpec {
        template: template.into(),
        image: image.into(),
        command: "echo hi".into(),
        network: true,
        env: vec![("LANG".into(), "C".into())],
        limits: SandboxLimits { memory_mb: 128, cpus: 0.5, pids: 64, timeout_s: 7, max_output_bytes: 999 },
        gpu: false,
    }
}

fn templates() -> BTreeMap<String, String> {
    BTreeMap::from([("busybox".to_owned(), "cynode/busybox:1".to_owned())])
}

#[test]
fn specs_convert_with_the_nodes_image_and_limits() {
    let l = lease();
    let s = sandbox_spec(&l, &spec("busybox", "cynode/busybox:1"), &templates(), false).expect("valid");
    assert_eq!((s.job_id, s.attempt, s.image.as_str()), (l.job_id, 2, "cynode/busybox:1"));
    assert_eq!(s.command, vec!["sh", "-c", "echo hi"]);
    assert_eq!(s.env, vec![("LANG".to_owned(), "C".to_owned())]);
    assert!(s.network && s.gpus.is_none());
    assert_eq!(s.limits.memory_bytes, 128 * 1024 * 1024);
    assert_eq!(s.limits.nano_cpus, 500_000_000);
    assert_eq!((s.limits.pids, s.limits.timeout, s.limits.max_output_bytes), (64, Duration::from_secs(7), 999));
    let unnamed = sandbox_spec(&l, &spec("busybox", ""), &templates(), false).expect("valid");
    assert_eq!(unnamed.image, "cynode/busybox:1", "an empty image means the template's");
}

#[test]
fn what_this_node_cannot_honour_is_explained() {
    let l = lease();
    let e = sandbox_spec(&l, &spec("python", "cynode/python:3"), &templates(), false).expect_err("unknown");
    assert!(e.contains("`python` is not offered") && e.contains("busybox"), "{e}");
    let e = sandbox_spec(&l, &spec("busybox", "evil:latest"), &templates(), false).expect_err("mismatch");
    assert!(e.contains("evil:latest") && e.contains("--template busybox=cynode/busybox:1"), "{e}");
    let mut gpu = spec("busybox", "cynode/busybox:1");
    gpu.gpu = true;
    assert!(sandbox_spec(&l, &gpu, &templates(), false).expect_err("no gpu").contains("GPU"));
    let mut cpus = spec("busybox", "cynode/busybox:1");
    cpus.limits.cpus = f64::NAN;
    assert!(sandbox_spec(&l, &cpus, &templates(), false).expect_err("nan").contains("CPU"));
    let mut mem = spec("busybox", "cynode/busybox:1");
    mem.limits.memory_mb = u64::MAX;
    assert!(sandbox_spec(&l, &mem, &templates(), false).expect_err("huge").contains("too large"));
}

#[tokio::test]
async fn inference_and_disabled_executors_are_rejected() {
    let runner = JobRunner::default();
    let control = JobControl::default();
    let (tx, _rx) = mpsc::channel(1);
    let mut l = lease();
    let o = runner.run(&l, &control, tx.clone()).await;
    assert_eq!(o.status, proto::FinishStatus::Rejected);
    assert!(o.message.as_deref().is_some_and(|m| m.contains("--enable-host-executor")));
    l.spec = JobSpec::Inference(proto::InferenceSpec {
        model: String::new(),
        prompt: "hi".into(),
        messages: Vec::new(),
        tools: Vec::new(),
        tool_choice: None,
        system: None,
        max_tokens: 8,
        timeout_s: 5,
    });
    let o = runner.run(&l, &control, tx).await;
    assert_eq!(o.status, proto::FinishStatus::Rejected);
    assert!(o.message.as_deref().is_some_and(|m| m.contains("--inference-url")), "{:?}", o.message);
}

#[tokio::test]
async fn embed_jobs_need_an_inference_server_and_stay_within_the_bounds() {
    let control = JobControl::default();
    let mut l = lease();
    let spec =
        |n: usize| proto::EmbedSpec { model: "e5".into(), input: vec!["x".into(); n], input_type: None, timeout_s: 5 };
    l.spec = JobSpec::Embed(spec(1));
    let o = JobRunner::default().embed(&spec(1), &control).await;
    assert_eq!(o.status, proto::FinishStatus::Rejected);
    assert!(o.message.as_deref().is_some_and(|m| m.contains("--inference-url")), "{:?}", o.message);
    // Refused before any request: the address is never called.
    let config = crate::executor::inference::InferenceConfig {
        base_url: "http://127.0.0.1:9".into(),
        api_key: None,
        allowed_models: Vec::new(),
        default_model: None,
    };
    let runner = JobRunner { inference: Some(InferenceExecutor::new(config)), ..JobRunner::default() };
    let o = runner.embed(&spec(proto::MAX_EMBED_INPUTS + 1), &control).await;
    assert_eq!(o.status, proto::FinishStatus::Rejected);
    assert!(o.message.as_deref().is_some_and(|m| m.contains("at most 64 texts")), "{:?}", o.message);
    let (tx, _rx) = mpsc::channel(1);
    let o = runner.run(&l, &control, tx).await;
    assert_eq!(o.status, proto::FinishStatus::Error, "an unreachable server is the node's error");
    assert!(o.embeddings.is_empty() && o.message.as_deref().is_some_and(|m| m.contains("unreachable")), "{o:?}");
}
