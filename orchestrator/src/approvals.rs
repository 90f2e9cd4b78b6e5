//! Approvals bound to the job: an approval covers the SHA-256 of the job's canonical spec, so a job whose spec
//! changed after approval was requested is not covered by it. The canonical spec holds what decides what a job
//! may do — template, image, argv, environment variable names (never values), network, GPU, limits, model — as
//! JSON with sorted keys. An agent's `run_command` tool call is held as the sandbox job it creates, so the
//! tool's arguments (command, template) are the spec's argv and template.

use cynode_protocol::JobSpec;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The canonical form of a job spec (keys sorted: `serde_json` maps are ordered).
#[must_use]
pub fn canonical_spec(spec: &JobSpec) -> Value {
    match spec {
        JobSpec::Sandbox(s) => {
            let mut env: Vec<&str> = s.env.iter().map(|(k, _)| k.as_str()).collect();
            env.sort_unstable();
            env.dedup();
            json!({
                "kind": "sandbox",
                "template": s.template,
                "image": s.image,
                "argv": ["sh", "-c", s.command],
                "env": env,
                "network": s.network,
                "gpu": s.gpu,
                "limits": {
                    "memory_mb": s.limits.memory_mb,
                    "cpus": s.limits.cpus,
                    "pids": s.limits.pids,
                    "timeout_s": s.limits.timeout_s,
                    "max_output_bytes": s.limits.max_output_bytes,
                },
            })
        }
        JobSpec::Inference(i) => {
            let tools: Vec<&str> =
                i.tools.iter().filter_map(|t| t.pointer("/function/name").and_then(Value::as_str)).collect();
            json!({
                "kind": "inference",
                "model": i.model,
                "tools": tools,
                "input_sha256": hex::encode(Sha256::digest(
                    serde_json::to_vec(&json!([i.system, i.prompt, i.messages])).unwrap_or_default()
                )),
                "max_tokens": i.max_tokens,
                "timeout_s": i.timeout_s,
            })
        }
        JobSpec::Embed(e) => json!({
            "kind": "embed",
            "model": e.model,
            "count": e.input.len(),
            "input_sha256": hex::encode(Sha256::digest(
                serde_json::to_vec(&json!([e.input_type.map(|t| t.as_str()), e.input])).unwrap_or_default()
            )),
            "timeout_s": e.timeout_s,
        }),
        JobSpec::Host(h) => json!({
            "kind": "host",
            "argv": ["sh", "-c", h.command],
            "timeout_s": h.timeout_s,
            "max_output_bytes": h.max_output_bytes,
        }),
    }
}

/// SHA-256 of the canonical spec's compact JSON.
#[must_use]
pub fn spec_hash(spec: &JobSpec) -> [u8; 32] {
    Sha256::digest(serde_json::to_vec(&canonical_spec(spec)).unwrap_or_default()).into()
}

/// The hash of a job spec as stored (`jobs.spec`); `None` when it does not read as a spec.
#[must_use]
pub fn stored_spec_hash(stored: &Value) -> Option<[u8; 32]> {
    serde_json::from_value::<JobSpec>(stored.clone()).ok().map(|s| spec_hash(&s))
}

/// Who may approve, for cards and replies: `one of U1, U2`, `2 of U1, U2, U3`, `an admin`, with `(not the
/// requester)` when the requester is one of them but may not approve their own job.
#[must_use]
pub fn who_may_approve(approvers: &[String], required: u32, requester: &str, requester_may_approve: bool) -> String {
    if approvers.is_empty() {
        return "an admin".into();
    }
    let list = approvers
        .iter()
        .map(|a| a.strip_prefix("role:").map_or_else(|| a.clone(), |r| format!("any {r}")))
        .collect::<Vec<_>>()
        .join(", ");
    let mut s = match (required, approvers.len()) {
        (1, 1) => list,
        (1, _) => format!("one of {list}"),
        (n, _) => format!("{n} of {list}"),
    };
    if !requester_may_approve && approvers.iter().any(|a| a == requester) {
        s.push_str(" (not the requester)");
    }
    s
}

#[cfg(test)]
mod tests {
    use cynode_protocol::{SandboxLimits, SandboxSpec};

    use super::*;

    fn sandbox(command: &str, env: &[(&str, &str)], gpu: bool) -> JobSpec {
        JobSpec::Sandbox(SandboxSpec {
            template: "py".into(),
            image: "python:3.12".into(),
            command: command.into(),
            network: false,
            env: env.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect(),
            limits: SandboxLimits { memory_mb: 256, cpus: 1.0, pids: 64, timeout_s: 60, max_output_bytes: 1024 },
            gpu,
        })
    }

    #[test]
    fn the_hash_covers_what_the_job_may_do_and_only_env_names() {
        let base = spec_hash(&sandbox("echo hi", &[("A", "1"), ("B", "2")], false));
        assert_eq!(base, spec_hash(&sandbox("echo hi", &[("B", "x"), ("A", "y")], false)), "env values and order");
        assert_ne!(base, spec_hash(&sandbox("echo bye", &[("A", "1"), ("B", "2")], false)), "argv");
        assert_ne!(base, spec_hash(&sandbox("echo hi", &[("A", "1")], false)), "env names");
        assert_ne!(base, spec_hash(&sandbox("echo hi", &[("A", "1"), ("B", "2")], true)), "gpu");
        let canon = canonical_spec(&sandbox("echo hi", &[("SECRET", "hunter2")], false)).to_string();
        assert!(canon.contains("SECRET") && !canon.contains("hunter2"), "{canon}");
    }

    #[test]
    fn an_embed_jobs_hash_covers_model_and_texts() {
        use cynode_protocol::{EmbedInputType, EmbedSpec};
        let embed = |model: &str, texts: &[&str], kind| {
            JobSpec::Embed(EmbedSpec {
                model: model.into(),
                input: texts.iter().map(|t| (*t).to_string()).collect(),
                input_type: kind,
                timeout_s: 30,
            })
        };
        let base = spec_hash(&embed("e5", &["a", "b"], None));
        assert_ne!(base, spec_hash(&embed("e5", &["a", "c"], None)), "texts");
        assert_ne!(base, spec_hash(&embed("e5", &["b", "a"], None)), "order");
        assert_ne!(base, spec_hash(&embed("bge", &["a", "b"], None)), "model");
        assert_ne!(base, spec_hash(&embed("e5", &["a", "b"], Some(EmbedInputType::Query))), "input type");
        let canon = canonical_spec(&embed("e5", &["private text"], None));
        assert_eq!((canon["kind"].as_str(), canon["count"].as_u64()), (Some("embed"), Some(1)));
        assert!(!canon.to_string().contains("private text"), "texts only as their hash");
    }

    #[test]
    fn who_may_approve_reads_naturally() {
        let a = vec!["U1".to_string(), "U2".to_string(), "U3".to_string()];
        assert_eq!(who_may_approve(&a, 2, "U9", false), "2 of U1, U2, U3");
        assert_eq!(who_may_approve(&a, 1, "U1", false), "one of U1, U2, U3 (not the requester)");
        assert_eq!(who_may_approve(&a, 1, "U1", true), "one of U1, U2, U3");
        assert_eq!(who_may_approve(&[], 1, "U1", false), "an admin");
    }
}
