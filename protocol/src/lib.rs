//! The node protocol: the versioned JSON contract between the orchestrator and node agents.
//!
//! Nodes always call the orchestrator (HTTP, `/v1/node/…`); nodes accept no connections. Every message
//! tolerates unknown fields, so either side can add optional fields within a protocol version. The version is
//! negotiated at registration: the node lists what it speaks, the orchestrator picks the highest it supports.
//! The full contract, with examples, is in `docs/node-protocol.md`.

mod job;
mod messages;

pub use job::{
    ChatMessage, EMBED_LABEL, EMBED_LABEL_VALUE, EmbedInputType, EmbedSpec, ExecutorKind, HostSpec, InferenceSpec,
    JobSpec, MAX_EMBED_INPUT_CHARS, MAX_EMBED_INPUTS, MAX_EMBED_VALUES, Requirements, SandboxLimits, SandboxSpec,
    ToolCall,
};
pub use messages::*;

/// The protocol version this build speaks best.
pub const PROTOCOL_VERSION: u32 = 2;

/// Every protocol version this build can speak. Version 2 adds [`FinishWithOutput`] (trailing output
/// carried in the finish); everything else is as in version 1.
pub const SUPPORTED_VERSIONS: &[u32] = &[1, 2];

/// The first version whose finish may carry output ([`FinishWithOutput`]).
pub const FINISH_WITH_OUTPUT_VERSION: u32 = 2;

/// Picks the highest version both sides speak.
pub fn negotiate(offered: &[u32]) -> Option<u32> {
    SUPPORTED_VERSIONS.iter().rev().copied().find(|v| offered.contains(v))
}

/// Paths of the node API, relative to the orchestrator's base URL.
pub mod paths {
    /// `POST` [`crate::RegisterRequest`] with `Authorization: Bearer <node key>` → [`crate::RegisterResponse`].
    pub const REGISTER: &str = "/v1/node/register";
    /// `POST` [`crate::LeaseRequest`] → [`crate::LeaseResponse`] (long poll).
    pub const LEASE: &str = "/v1/node/lease";
    /// `POST` [`crate::HeartbeatRequest`] → [`crate::HeartbeatResponse`].
    pub const HEARTBEAT: &str = "/v1/node/heartbeat";
    /// `POST` [`crate::OutputBatch`] → [`crate::OutputAck`].
    pub const OUTPUT: &str = "/v1/node/output";
    /// `POST` [`crate::FinishRequest`] (protocol 2: [`crate::FinishWithOutput`]) → [`crate::FinishAck`].
    pub const FINISH: &str = "/v1/node/finish";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_picks_the_highest_common_version() {
        assert_eq!(negotiate(&[1, 2, 3]), Some(2));
        assert_eq!(negotiate(&[1]), Some(1), "version 1 nodes keep working");
        assert_eq!(negotiate(&[7]), None);
        assert_eq!(negotiate(&[]), None);
    }

    #[test]
    fn unknown_fields_are_tolerated() {
        let json = r#"{"max_jobs": 2, "wait_ms": 100, "from_the_future": true}"#;
        let req: LeaseRequest = serde_json::from_str(json).expect("tolerant");
        assert_eq!(req.max_jobs, 2);
    }

    #[test]
    fn finish_output_is_optional_on_the_wire() {
        let v1 = r#"{"lease": {"job_id": "0190f5a4-7a2b-7c3d-8e4f-5a6b7c8d9e0f", "attempt": 1,
            "lease_token": "0190f5a4-7a2b-7c3d-8e4f-5a6b7c8d9e10"},
            "outcome": {"status": "succeeded", "duration_ms": 3}}"#;
        let req: FinishWithOutput = serde_json::from_str(v1).expect("a version 1 finish still parses");
        assert!(req.output.is_empty());
        assert_eq!(req.finish.lease.attempt, 1);
        let text = serde_json::to_string(&req).expect("ser");
        assert!(!text.contains("\"output\""), "no empty field on the wire: {text}");
        let v1_again: FinishRequest = serde_json::from_str(&text).expect("readable as version 1");
        assert_eq!(v1_again.outcome, req.finish.outcome);
        let with = FinishWithOutput {
            output: vec![OutputChunk { stream: Stream::Stdout, seq: 0, data: "hi\n".into() }],
            ..req
        };
        let back: FinishWithOutput = serde_json::from_str(&serde_json::to_string(&with).expect("ser")).expect("de");
        assert_eq!(back.output, with.output);
    }

    #[test]
    fn embed_specs_and_results_on_the_wire() {
        let spec = JobSpec::Embed(EmbedSpec {
            model: "e5".into(),
            input: vec!["a".into(), "b".into()],
            input_type: None,
            timeout_s: 30,
        });
        let text = serde_json::to_string(&spec).expect("ser");
        assert!(text.contains(r#""kind":"embed""#) && !text.contains("input_type"), "{text}");
        assert_eq!(serde_json::from_str::<JobSpec>(&text).expect("de"), spec);
        assert_eq!(spec.executor(), ExecutorKind::Inference);
        let typed: JobSpec =
            serde_json::from_str(r#"{"kind":"embed","model":"e5","input":["q"],"input_type":"query"}"#).expect("de");
        let JobSpec::Embed(e) = typed else { panic!("not embed") };
        assert_eq!((e.input_type, e.timeout_s), (Some(EmbedInputType::Query), 60));
        // A finish without vectors is as before; with them, an orchestrator that predates them ignores them.
        let plain = r#"{"status": "succeeded", "duration_ms": 3}"#;
        assert!(serde_json::from_str::<Outcome>(plain).expect("de").embeddings.is_empty());
        let mut o: Outcome = serde_json::from_str(plain).expect("de");
        assert!(!serde_json::to_string(&o).expect("ser").contains("embeddings"));
        o.embeddings = vec![vec![0.5, -1.0], vec![0.25, 2.0]];
        let back: Outcome = serde_json::from_str(&serde_json::to_string(&o).expect("ser")).expect("de");
        assert_eq!(back, o);
    }

    #[test]
    fn embed_specs_are_bounded() {
        let spec = |n: usize, len: usize| EmbedSpec {
            model: "e5".into(),
            input: vec!["x".repeat(len); n],
            input_type: Some(EmbedInputType::Passage),
            timeout_s: 30,
        };
        assert!(spec(MAX_EMBED_INPUTS, MAX_EMBED_INPUT_CHARS).validate().is_ok());
        assert!(spec(MAX_EMBED_INPUTS + 1, 1).validate().expect_err("too many").contains("at most 64 texts"));
        assert!(spec(2, MAX_EMBED_INPUT_CHARS + 1).validate().expect_err("too long").contains("longer than"));
        assert!(spec(0, 1).validate().expect_err("empty").contains("at least one"));
        assert!(EmbedSpec { model: " ".into(), ..spec(1, 1) }.validate().expect_err("model").contains("model"));
    }

    #[test]
    fn job_specs_round_trip() {
        let spec = JobSpec::Sandbox(SandboxSpec {
            template: "busybox".into(),
            image: "cynode/busybox:latest".into(),
            command: "echo hi".into(),
            network: false,
            env: vec![],
            limits: SandboxLimits::default(),
            gpu: false,
        });
        let text = serde_json::to_string(&spec).expect("ser");
        assert!(text.contains(r#""kind":"sandbox""#), "{text}");
        let back: JobSpec = serde_json::from_str(&text).expect("de");
        assert_eq!(back, spec);
        assert_eq!(back.executor(), ExecutorKind::Docker);
    }
}
