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
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--chat_format", "gemma", "--n_ctx", "2048"])
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

/// An agent turn on the real model: the first step must call `run_command` (`agent.first_tool`, because
/// llama-cpp-python's server returns real `tool_calls` only when `tool_choice` names the function; the reply is
/// then generated under a grammar made from the tool's JSON schema), the command runs in a real Docker sandbox,
/// and the second step (`auto`) answers in the Slack thread.
#[tokio::test]
async fn an_agent_turn_makes_a_real_tool_call_and_answers_in_the_thread() {
    if std::env::var("CYNODE_E2E_INFERENCE").as_deref() != Ok("1") {
        eprintln!("inference e2e: set CYNODE_E2E_INFERENCE=1 (after scripts/setup-inference) to run it");
        return;
    }
    let mut llama = llama_server().await;
    let slack = cynode_tests::fakes::FakeSlack::start().await;
    let env = [("CYNODE__AGENT__FIRST_TOOL", "run_command"), ("CYNODE__AGENT__STEP_MAX_TOKENS", "160")];
    let chat = crate::chat::Chat::start_with_node(
        &crate::chat::slack_install(&slack.base_url(), slack.token()),
        "",
        &env,
        &["--inference-url", llama.url.as_str()],
    )
    .await;
    let thread = "1700000300.000100";
    chat.slack_mention("EvRealAgent1", "U0ALICE", "C0REAL", thread, "please list the files in the current directory")
        .await;
    let pool = chat.db.pool.clone();
    let mut ended = None;
    for _ in 0..600 {
        let row: Option<(String, Option<String>, String)> = sqlx::query_as(
            "SELECT a.state, a.error, t.reply FROM agent_turns a JOIN tasks t ON t.id = a.task_id WHERE a.state <> 'running'",
        )
        .fetch_optional(&pool)
        .await
        .expect("turn");
        if row.is_some() {
            ended = row;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (state, error, reply) =
        ended.unwrap_or_else(|| panic!("the turn did not end in 300 s:\n{}", chat.server_output()));
    assert_eq!(state, "succeeded", "{error:?}\n{reply}");
    let (name, arguments, summary): (String, String, Option<String>) =
        sqlx::query_as("SELECT name, arguments, summary FROM agent_tool_calls ORDER BY step, idx LIMIT 1")
            .fetch_one(&pool)
            .await
            .expect("the model made a tool call");
    assert_eq!(name, "run_command");
    let args: serde_json::Value = serde_json::from_str(&arguments).expect("the real call's arguments are JSON");
    assert!(args["command"].is_string(), "{arguments}");
    let ran: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE executor = 'docker' AND finished_at IS NOT NULL")
            .fetch_one(&pool)
            .await
            .expect("jobs");
    assert_eq!(ran, 1, "the model's command ran in a sandbox: {summary:?}");
    assert!(reply.contains("🔧 run_command") && reply.contains("2 steps"), "{reply}");
    let shown = |slack: &cynode_tests::fakes::FakeSlack| {
        slack.messages_in("C0REAL", Some(thread)).iter().map(|m| m.shown()).collect::<Vec<_>>().join("\n")
    };
    crate::chat::eventually(
        Duration::from_secs(30),
        "the answer in the thread",
        || shown(&slack).contains("2 steps").then_some(()),
        || shown(&slack),
    )
    .await;
    let _ = llama.child.kill().await;
}
