//! Policy decision benchmark (a harness, not a test): the time of one Rego decision as `run` makes it (clone the
//! compiled engine, set the input, evaluate `data.cynode.decision`), p50/p99 over many inputs, for the shipped
//! example policy (docs/examples/policy.rego) and for a generated 200-rule policy (200 `else` branches matching on
//! template, channel and role; most inputs fall through to the last ones). No database.
//!
//! `cargo bench -p cynode-orchestrator --bench policy [-- DECISIONS]` (per policy, default 20000).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use cynode_orchestrator::policy::rego::{Input, RegoPolicy};
use serde_json::{Value, json};

const EXAMPLE: &str = include_str!("../../docs/examples/policy.rego");

fn generated(rules: usize) -> String {
    let mut s = String::from(
        "package cynode\n\ndecision := {\"deny\": \"viewers cannot run jobs\"} if {\n\t\"viewer\" in input.roles\n}",
    );
    for i in 0..rules - 1 {
        s.push_str(&format!(
            " else := {{\"require_approval\": {{\"approvers\": [\"role:approver\"], \"count\": {}, \"reason\": \"rule {i}\"}}}} if {{\n\t\
             input.job.template == \"tpl-{i}\"\n\tinput.channel == \"C{i}\"\n\tnot \"admin\" in input.roles\n}}",
            1 + i % 3
        ));
    }
    s.push_str(" else := {\"allow\": true}\n");
    s
}

fn input(i: usize) -> Value {
    let time: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z").expect("time").to_utc();
    let template = format!("tpl-{}", (i * 7919) % 260);
    let job = json!({
        "kind": "sandbox", "template": template, "image": "cynode/busybox:latest",
        "argv": ["sh", "-c", format!("echo {i}")], "env": [], "network": i.is_multiple_of(5), "gpu": i.is_multiple_of(7),
        "limits": { "memory_mb": 256, "cpus": 1.0, "pids": 128, "timeout_s": 300, "max_output_bytes": 1_048_576 },
    });
    let roles = [["member"], ["approver"], ["admin"], ["viewer"]][i % 4].to_vec();
    Input {
        user: "U123",
        install: None,
        source: "chat",
        roles,
        channel: Some(format!("C{}", (i * 7919) % 260)),
        command: "run",
        job,
        time,
    }
    .to_json()
}

fn measure(name: &str, policy: &RegoPolicy, n: usize) {
    let inputs: Vec<Value> = (0..1000).map(input).collect();
    for v in inputs.iter().take(200) {
        policy.decide(v).expect("warm-up decision");
    }
    let mut lat: Vec<Duration> = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        let d = policy.decide(&inputs[i % inputs.len()]);
        lat.push(t.elapsed());
        d.expect("decision");
    }
    let total = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let us = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e6;
    println!("| {name} | {n} | {:.1} | {:.1} | {:.1} | {:.0} |", us(0.50), us(0.99), us(0.999), n as f64 / total);
}

fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(20_000);
    let example = RegoPolicy::compile("policy.rego", EXAMPLE).expect("example compiles");
    let t = Instant::now();
    let big = RegoPolicy::compile("generated.rego", &generated(200)).expect("generated compiles");
    println!("compiled the 200-rule policy in {:.1} ms\n", t.elapsed().as_secs_f64() * 1000.0);
    println!("| policy | decisions | p50 µs | p99 µs | p99.9 µs | decisions/s (one thread) |");
    println!("|---|---:|---:|---:|---:|---:|");
    measure("example (docs/examples/policy.rego)", &example, n);
    measure("200 rules", &big, n);
}
