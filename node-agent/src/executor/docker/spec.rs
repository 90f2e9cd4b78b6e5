//! What a job asks the sandbox for: image, command, environment and limits.

use std::time::Duration;

use uuid::Uuid;

use super::error::ExecError;

/// One run of one job in a sandbox container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    /// The job this run belongs to (labels the container `cynode.job`).
    pub job_id: Uuid,
    /// Attempt number of the job (labels the container `cynode.attempt`).
    pub attempt: i32,
    /// Image reference; must be in the executor's allowlist.
    pub image: String,
    /// Exec-form command (`argv`). Use [`shell_command`] for `sh -c <cmd>`.
    pub command: Vec<String>,
    /// The complete environment of the sandbox besides `PATH` and `HOME`. The agent's own
    /// environment never reaches the sandbox; the caller passes only allowlisted variables.
    pub env: Vec<(String, String)>,
    /// Working directory inside the container; `None` means [`WORK_DIR`].
    pub workdir: Option<String>,
    /// Resource limits.
    pub limits: SandboxLimits,
    /// Whether the sandbox gets a network (the engine's default bridge). Off by default.
    pub network: bool,
    /// GPUs to hand to the sandbox, if any.
    pub gpus: Option<GpuRequest>,
}

/// The per-job writable scratch directory (a tmpfs) and the default working directory.
pub const WORK_DIR: &str = "/work";

/// `PATH` inside every sandbox.
pub const SANDBOX_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

impl SandboxSpec {
    /// A spec with default limits, no network, no GPU and an empty environment.
    pub fn new(job_id: Uuid, attempt: i32, image: impl Into<String>, command: Vec<String>) -> Self {
        Self {
            job_id,
            attempt,
            image: image.into(),
            command,
            env: Vec::new(),
            workdir: None,
            limits: SandboxLimits::default(),
            network: false,
            gpus: None,
        }
    }

    /// Checks what the engine would otherwise reject late or interpret surprisingly.
    ///
    /// # Errors
    /// [`ExecError::InvalidSpec`] naming the offending field (never its value for env entries).
    pub fn validate(&self) -> Result<(), ExecError> {
        let invalid = |m: String| Err(ExecError::InvalidSpec(m));
        if self.command.is_empty() || self.command[0].is_empty() {
            return invalid("the command is empty".into());
        }
        if self.command.iter().any(|a| a.contains('\0')) {
            return invalid("the command contains a NUL byte".into());
        }
        for (i, (k, v)) in self.env.iter().enumerate() {
            let name_ok = !k.is_empty()
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !k.as_bytes()[0].is_ascii_digit();
            if !name_ok {
                return invalid(format!("environment entry #{i} has an invalid name (letters, digits, _ only)"));
            }
            if v.contains('\0') {
                return invalid(format!("environment variable {k} contains a NUL byte"));
            }
        }
        if let Some(dir) = &self.workdir {
            if !dir.starts_with('/') {
                return invalid("the working directory must be an absolute path".into());
            }
            if dir.contains('\0') {
                return invalid("the working directory contains a NUL byte".into());
            }
        }
        self.limits.validate()
    }
}

/// Wraps a shell command line as `sh -c <cmd>`.
pub fn shell_command(cmd: &str) -> Vec<String> {
    vec!["sh".to_owned(), "-c".to_owned(), cmd.to_owned()]
}

/// Resource limits of one sandbox. Every limit is always applied; there is no "unlimited".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Memory limit in bytes; swap is disabled (memory-swap = memory).
    pub memory_bytes: i64,
    /// CPU limit in billionths of a CPU (1_000_000_000 = one core).
    pub nano_cpus: i64,
    /// Maximum number of processes and threads.
    pub pids: i64,
    /// Wall-clock limit from start to exit.
    pub timeout: Duration,
    /// Maximum bytes of stdout + stderr delivered; past it the sandbox is killed.
    pub max_output_bytes: u64,
    /// Size of each of the two tmpfs mounts (`/tmp` and `/work`), in bytes. Tmpfs pages count
    /// against `memory_bytes`.
    pub tmpfs_bytes: i64,
}

impl Default for SandboxLimits {
    /// 512 MiB memory, one CPU, 256 processes, 10 minutes, 10 MiB of output, 64 MiB tmpfs.
    fn default() -> Self {
        Self {
            memory_bytes: 512 * 1024 * 1024,
            nano_cpus: 1_000_000_000,
            pids: 256,
            timeout: Duration::from_secs(600),
            max_output_bytes: 10 * 1024 * 1024,
            tmpfs_bytes: 64 * 1024 * 1024,
        }
    }
}

impl SandboxLimits {
    /// The engine refuses memory limits below 6 MiB.
    const MIN_MEMORY: i64 = 6 * 1024 * 1024;

    fn validate(&self) -> Result<(), ExecError> {
        let fail = |m: &str| Err(ExecError::InvalidSpec(m.to_owned()));
        if self.memory_bytes < Self::MIN_MEMORY {
            return fail("the memory limit must be at least 6 MiB");
        }
        if self.nano_cpus <= 0 {
            return fail("the CPU limit must be positive");
        }
        if self.pids <= 0 {
            return fail("the process limit must be positive");
        }
        if self.timeout.is_zero() {
            return fail("the timeout must be positive");
        }
        if self.max_output_bytes == 0 {
            return fail("the output limit must be positive");
        }
        if self.tmpfs_bytes <= 0 {
            return fail("the tmpfs size must be positive");
        }
        Ok(())
    }
}

/// GPUs handed to a sandbox through the engine's device requests (NVIDIA container toolkit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuRequest {
    /// Every GPU of the node.
    All,
    /// Any `n` GPUs.
    Count(u32),
    /// Specific GPUs by index or UUID, as `nvidia-smi` lists them.
    Devices(Vec<String>),
}
