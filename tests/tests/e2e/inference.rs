//! End to end on a real OpenAI-compatible server running on CPU: llama-cpp-python's server with Gemma 3
//! 270M (Q4_K_M) from PyPI. `ask` → inference job → a real `cynode-node` with `--inference-url` → tokens
//! stored as output, usage in the result.
//!
//! Installing the server builds llama.cpp (about 6–7 minutes on 2 cores the first time), so this test runs
//! behind one switch: `CYNODE_E2E_INFERENCE=1`, which `.ci/run` sets after `scripts/setup-inference`.

use std::process::Stdio;
use std::time::Duration;

use cynode_protocol::{InferenceSpec, JobSpec, Requirements};

use crate::support::{INFERENCE_KEY, Server};

struct LlamaServer {
    child: tokio::process::Child,
    url: String,
}

async fn llama_server() -> LlamaServer {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".tools/inference/bin/python");
    let model = root.join(".tools/inference/gemma3-270m-q4_k_m.gguf");
    assert!(
        python.exists() && model.exists(),
        "CYNODE_E2E_INFERENCE=1 but the inference server is not installed: run scripts/setup-inference"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let child = tokio::process::Command::new(python)
        .args(["-m", "llama_cpp.server", "--model"])
        .arg(&model)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--chat_format", "gemma", "--n_ctx", "1024"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start llama_cpp.server");
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..240 {
        if http.get(format!("{url}/v1/models")).send().await.is_ok_and(|r| r.status().is_success()) {
            return LlamaServer { child, url };
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("llama_cpp.server did not answer within 120 s");
}

#[tokio::test]
async fn ask_runs_on_a_real_cpu_inference_server() {
    if std::env::var("CYNODE_E2E_INFERENCE").as_deref() != Ok("1") {
        eprintln!("inference e2e: set CYNODE_E2E_INFERENCE=1 (after scripts/setup-inference) to run it");
        return;
    }
    let mut llama = llama_server().await;
    let server = Server::start(&[]).await;
    let _node = server.node("llm", &["--no-docker", "--inference-url", llama.url.as_str()], INFERENCE_KEY).await;
    let spec = JobSpec::Inference(InferenceSpec {
        model: String::new(),
        prompt: "Say hello in one short sentence.".into(),
        messages: Vec::new(),
        tools: Vec::new(),
        tool_choice: None,
        system: None,
        max_tokens: 24,
        timeout_s: 120,
    });
    let (_, job) = server.enqueue(spec, Requirements::default()).await;
    let row = server
        .wait_job(job, Duration::from_secs(150), |j| j.state != "queued" && j.state != "leased" && j.state != "running")
        .await;
    assert_eq!(row.state, "succeeded", "{:?}", row.result);
    let result = row.result.expect("result");
    assert!(result["output_bytes"].as_u64().is_some_and(|n| n > 0), "{result}");
    // llama-cpp-python's server sends no usage in streams; servers that do (vLLM, Ollama) get it recorded.
    assert!(result["usage"].is_null() || result["usage"]["completion_tokens"].as_u64().is_some_and(|n| n > 0));
    let text = server.output(job, 1, "stdout").await;
    assert!(!text.trim().is_empty(), "the model said something");
    let _ = llama.child.kill().await;
}
