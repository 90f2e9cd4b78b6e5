//! Request and response bodies of the node API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::job::{ExecutorKind, JobSpec};

/// A GPU as the node sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// Product name.
    pub name: String,
    /// Total memory in MiB.
    pub memory_mb: u64,
    /// Utilisation in percent at report time.
    #[serde(default)]
    pub utilization_pct: Option<u32>,
}

/// What a node offers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Executors it runs.
    pub executors: Vec<ExecutorKind>,
    /// Sandbox templates it has images for.
    #[serde(default)]
    pub templates: Vec<String>,
    /// Free-form labels (`zone=eu`, `disk=ssd`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// GPUs.
    #[serde(default)]
    pub gpus: Vec<GpuInfo>,
    /// Models its inference server serves.
    #[serde(default)]
    pub models: Vec<String>,
    /// Jobs it runs at once.
    #[serde(default = "one")]
    pub max_concurrent_jobs: u32,
    /// It runs both sandboxes and inference, so an agent's tool calls can stay on the host of its inference.
    #[serde(default)]
    pub colocated: bool,
}

fn one() -> u32 {
    1
}

/// `POST /v1/node/register`, authenticated with the node's pre-shared key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// Protocol versions the node speaks.
    pub protocol_versions: Vec<u32>,
    /// Stable node name (host name by default); re-registering with the same key and name keeps the node id.
    pub name: String,
    /// What it offers.
    pub capabilities: Capabilities,
    /// The agent's build (`cynode-node` package version), shown in `cynode nodes`; optional, older agents omit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
}

/// The answer to a registration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// The node's id.
    pub node_id: Uuid,
    /// The negotiated protocol version.
    pub protocol_version: u32,
    /// Bearer token for every other call (HS256 JWT).
    pub token: String,
    /// Seconds until the token expires; register again before then.
    pub token_expires_in_s: u64,
    /// How often to heartbeat held leases.
    pub heartbeat_interval_ms: u64,
    /// A lease not heartbeated for this long is re-queued.
    pub lease_ttl_ms: u64,
    /// The longest a lease request waits for work.
    pub max_wait_ms: u64,
}

/// `POST /v1/node/lease`: wait up to `wait_ms` for up to `max_jobs` jobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseRequest {
    /// Jobs wanted (free slots).
    pub max_jobs: u32,
    /// Longest wait in milliseconds (capped by the server).
    pub wait_ms: u64,
}

/// Leased jobs (possibly none when the wait ended).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseResponse {
    /// The leases.
    pub leases: Vec<Lease>,
}

/// One leased job. Every write about it must quote `attempt` and `lease_token`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lease {
    /// Job id.
    pub job_id: Uuid,
    /// Attempt number (1-based).
    pub attempt: i32,
    /// Fencing token of this attempt.
    pub lease_token: Uuid,
    /// Milliseconds the lease lasts without a heartbeat.
    pub lease_ttl_ms: u64,
    /// What to run.
    pub spec: JobSpec,
}

/// Names one held lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRef {
    /// Job id.
    pub job_id: Uuid,
    /// Attempt.
    pub attempt: i32,
    /// Token.
    pub lease_token: Uuid,
}

/// `POST /v1/node/heartbeat`: extends every named lease the node still holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    /// Leases held.
    pub leases: Vec<LeaseRef>,
}

/// Heartbeat answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// Leases extended.
    pub extended: Vec<Uuid>,
    /// Jobs whose cancellation was requested: stop them and finish as cancelled.
    pub cancel: Vec<Uuid>,
    /// Leases no longer held (expired and re-queued, timed out, or superseded): stop work, write nothing more.
    pub lost: Vec<Uuid>,
}

/// Output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output (or generated tokens).
    Stdout,
    /// Standard error.
    Stderr,
    /// Notices from the node (truncation, retries).
    System,
}

impl Stream {
    /// Stable name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
            Self::System => "system",
        }
    }
}

/// One numbered piece of output; idempotent by `(job, attempt, stream, seq)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputChunk {
    /// Stream.
    pub stream: Stream,
    /// Sequence number within the stream, from 0.
    pub seq: u64,
    /// UTF-8 text (invalid bytes replaced by the node).
    pub data: String,
}

/// `POST /v1/node/output`: chunks of one leased job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputBatch {
    /// The lease.
    pub lease: LeaseRef,
    /// Chunks, any order.
    pub chunks: Vec<OutputChunk>,
}

/// Output answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputAck {
    /// Chunks stored now.
    pub stored: u32,
    /// Chunks already stored earlier (retries).
    pub duplicates: u32,
    /// The job's cancellation was requested.
    pub cancel: bool,
}

/// How a job ended on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishStatus {
    /// Exit code 0.
    Succeeded,
    /// Non-zero exit code.
    Failed,
    /// Wall-clock limit reached.
    TimedOut,
    /// Killed for exceeding its memory limit.
    OutOfMemory,
    /// Killed for exceeding its output limit.
    OutputLimit,
    /// Stopped on request.
    Cancelled,
    /// Refused before running (image not allowed, unknown template).
    Rejected,
    /// The node could not run it (engine down).
    Error,
}

impl FinishStatus {
    /// The job state this status leads to.
    pub fn job_state(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
            Self::Failed | Self::OutOfMemory | Self::OutputLimit | Self::Rejected | Self::Error => "failed",
        }
    }
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// How it ended.
    pub status: FinishStatus,
    /// Exit code, when the process exited.
    #[serde(default)]
    pub exit_code: Option<i64>,
    /// Wall-clock duration.
    pub duration_ms: u64,
    /// Output bytes produced (before truncation).
    #[serde(default)]
    pub output_bytes: u64,
    /// Output was cut at the limit.
    #[serde(default)]
    pub truncated: bool,
    /// A short human explanation for non-success.
    #[serde(default)]
    pub message: Option<String>,
    /// Token usage for inference jobs.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// The tool calls an inference job's model made (its text is the job's output).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<crate::job::ToolCall>,
    /// The vectors of a succeeded embed job: one per input, in input order, all of one size.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embeddings: Vec<Vec<f32>>,
}

impl Outcome {
    /// An outcome of `status` after `duration_ms` and nothing else: no exit code, no output, no message, usage,
    /// tool calls or vectors (set those with struct update syntax: `Outcome { exit_code: Some(0),
    /// ..Outcome::new(FinishStatus::Succeeded, 12) }`).
    #[must_use]
    pub fn new(status: FinishStatus, duration_ms: u64) -> Self {
        Self {
            status,
            exit_code: None,
            duration_ms,
            output_bytes: 0,
            truncated: false,
            message: None,
            usage: None,
            tool_calls: Vec::new(),
            embeddings: Vec::new(),
        }
    }
}

/// Inference token usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
}

/// `POST /v1/node/finish`: idempotent; a retry with a different outcome is refused (409).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinishRequest {
    /// The lease.
    pub lease: LeaseRef,
    /// The result.
    pub outcome: Outcome,
}

/// The `POST /v1/node/finish` body of protocol 2: a [`FinishRequest`] that also carries the job's last output
/// chunks (those not uploaded before), stored in the same transaction as the result, so a short job costs one
/// write. The chunks follow the rules and limits of [`OutputBatch::chunks`] and are idempotent by
/// `(job, attempt, stream, seq)`; a retry of a recorded finish stores nothing again. Without `output` this is
/// exactly a version 1 finish. Send `output` only when protocol 2 was negotiated: a version 1 orchestrator
/// ignores unknown fields and would drop the chunks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinishWithOutput {
    /// Lease and outcome, as in version 1.
    #[serde(flatten)]
    pub finish: FinishRequest,
    /// Trailing output chunks, any order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output: Vec<OutputChunk>,
}

/// Finish answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinishAck {
    /// The job's final state.
    pub state: String,
    /// This was a retry of a finish already recorded.
    pub duplicate: bool,
}

/// Every error answer: `{"error": {"code": …, "message": …}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A stable code and a human message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable machine code (`stale_lease`, `token_expired`, …).
    pub code: String,
    /// Human message.
    pub message: String,
}
