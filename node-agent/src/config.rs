//! Node agent configuration: one typed [`AgentConfig`], built from the command line and the environment
//! ([`AgentConfig::from_cli`]) or directly by an embedding program (`cynode up` uses [`AgentConfig::new`]).
//!
//! This is the only module of the crate that reads the process environment ([`Env::from_process`]); the
//! rest receives values. Environment variables: `CYNODE_NODE_KEY`, `CYNODE_ORCHESTRATOR_URL`,
//! `CYNODE_NODE_NAME`, `DOCKER_HOST`, `RUST_LOG`, `CYNODE_LOG_FORMAT`.

pub(crate) mod parse;

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

use crate::cli::{NodeArgs, RunArgs};
pub use parse::{ConfigError, Template, host_name};

/// Orchestrator URL when neither `--orchestrator` nor `CYNODE_ORCHESTRATOR_URL` is given.
pub const DEFAULT_ORCHESTRATOR_URL: &str = "http://127.0.0.1:8080";
/// Template offered when none is configured.
pub const DEFAULT_TEMPLATE: (&str, &str) = ("busybox", "cynode/busybox:latest");
/// Jobs run at once unless configured.
pub const DEFAULT_MAX_JOBS: u32 = 2;
/// Warm sandbox containers kept per template unless configured.
pub const DEFAULT_WARM_POOL: usize = 2;
/// Most warm sandbox containers per template.
pub const MAX_WARM_POOL: usize = 64;

/// A snapshot of the environment variables the agent uses.
#[derive(Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be secrets (the node key): show names only.
        f.debug_list().entries(self.vars.keys()).finish()
    }
}

impl Env {
    /// Reads the process environment (the one place in this crate that does).
    pub fn from_process() -> Self {
        Self::from_pairs(std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))))
    }

    /// An explicit environment (tests, embedding).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self { vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    /// Log settings: `RUST_LOG` (default `info`) and `CYNODE_LOG_FORMAT` (`json` or `pretty`).
    pub fn log(&self) -> LogSettings {
        LogSettings {
            filter: self.get("RUST_LOG").unwrap_or("info").to_owned(),
            json: self.get("CYNODE_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json")),
        }
    }

    /// The container engine endpoint from `DOCKER_HOST`, if set.
    pub fn docker_host(&self) -> Option<String> {
        self.get("DOCKER_HOST").map(str::to_owned)
    }
}

/// How the binary logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// `tracing` filter directive.
    pub filter: String,
    /// JSON lines instead of human-readable text.
    pub json: bool,
}

/// Which executors the node offers and how they run.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorConfig {
    /// Offer the Docker executor when the engine is reachable (on by default).
    pub docker: bool,
    /// Offer the host executor (no isolation; off unless explicitly enabled).
    pub host: bool,
    /// Sandbox templates (name → image); the Docker executor runs only these images.
    pub templates: Vec<Template>,
    /// Engine endpoint; `None` means the default unix socket.
    pub docker_endpoint: Option<String>,
    /// Owner label of this agent's sandboxes (scope of the leftover cleanup at start).
    pub owner: String,
    /// Time a stopped job gets between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
    /// Idle, already started sandbox containers kept per template, each waiting for its job on stdin, so a
    /// job starts without creating a container (0 disables the pool). Each serves one job and is then
    /// destroyed.
    pub warm_pool: usize,
    /// The OpenAI-compatible inference server on this node, if any.
    pub inference: Option<crate::executor::inference::InferenceConfig>,
    /// An external model provider this node stands for (a gateway replica's in-process provider node). Such a
    /// node offers only the `provider` executor: no sandboxes, no host jobs, no local inference, no GPU probe.
    pub provider: Option<ProviderExecutor>,
}

/// The executor of a provider node: the provider's OpenAI-compatible API, reached with a client the gateway
/// builds (its outbound guard: no internal addresses unless the operator allowed them).
#[derive(Debug, Clone)]
pub struct ProviderExecutor {
    /// Base URL, key (sent only as the `Authorization` header), the provider's models (the first is the
    /// default).
    pub inference: crate::executor::inference::InferenceConfig,
    /// The HTTP client to call it with.
    pub http: reqwest::Client,
}

impl PartialEq for ProviderExecutor {
    fn eq(&self, other: &Self) -> bool {
        self.inference == other.inference
    }
}

impl ExecutorConfig {
    /// Docker on (when reachable), host off, the default template, the default engine endpoint.
    pub fn new(owner: impl Into<String>) -> Self {
        let (name, image) = DEFAULT_TEMPLATE;
        Self {
            docker: true,
            host: false,
            templates: vec![Template { name: name.to_owned(), image: image.to_owned() }],
            docker_endpoint: None,
            owner: owner.into(),
            stop_grace: Duration::from_secs(2),
            warm_pool: DEFAULT_WARM_POOL,
            inference: None,
            provider: None,
        }
    }

    /// From the shared flags and the environment; `default_owner` applies when `--owner` is absent.
    ///
    /// # Errors
    /// [`ConfigError`] for malformed `NAME=IMAGE` pairs.
    pub fn from_args(args: &NodeArgs, env: &Env, default_owner: &str) -> Result<Self, ConfigError> {
        let mut c = Self::new(args.owner.clone().unwrap_or_else(|| default_owner.to_owned()));
        c.docker = !args.no_docker;
        c.host = args.enable_host_executor;
        if !args.templates.is_empty() {
            c.templates = args.templates.iter().map(|t| Template::parse(t)).collect::<Result<_, _>>()?;
        }
        c.docker_endpoint = args.docker_host.clone().or_else(|| env.docker_host());
        if let Some(n) = args.warm_pool {
            if n > MAX_WARM_POOL {
                return Err(ConfigError::Invalid {
                    setting: "--warm-pool",
                    problem: format!("must be between 0 and {MAX_WARM_POOL} containers per template"),
                });
            }
            c.warm_pool = n;
        }
        if let Some(url) = &args.inference_url {
            parse::url(url)?;
            c.inference = Some(crate::executor::inference::InferenceConfig {
                base_url: url.clone(),
                api_key: env.get("CYNODE_INFERENCE_API_KEY").map(|k| SecretString::from(k.to_owned())),
                allowed_models: args.models.clone(),
                default_model: args.default_model.clone(),
            });
        }
        Ok(c)
    }
}

/// Timing knobs. The defaults suit production; tests shorten them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentTiming {
    /// Longest lease long poll the agent asks for (the orchestrator caps it further).
    pub lease_wait: Duration,
    /// Output is uploaded at most this long after it was produced.
    pub batch_window: Duration,
    /// Most chunks per upload.
    pub batch_max_chunks: usize,
    /// First retry delay after a transient failure; doubles per failure (with jitter).
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_cap: Duration,
    /// HTTP timeout of every call except the long poll (which gets its wait plus this).
    pub request_timeout: Duration,
    /// How long a stopping agent waits for its cancelled jobs to be reported before it gives up.
    pub shutdown_timeout: Duration,
}

impl Default for AgentTiming {
    fn default() -> Self {
        Self {
            lease_wait: Duration::from_secs(25),
            batch_window: Duration::from_millis(100),
            batch_max_chunks: 64,
            retry_base: Duration::from_millis(200),
            retry_cap: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Everything the agent needs to run.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Orchestrator base URL (`http://` or `https://`), without the `/v1/node/…` paths.
    pub orchestrator_url: String,
    /// The pre-shared node key (never logged or printed).
    pub node_key: SecretString,
    /// Node name (1–128 characters); with the key, it identifies the node across restarts.
    pub name: String,
    /// Executors.
    pub executors: ExecutorConfig,
    /// Free-form labels jobs can require.
    pub labels: BTreeMap<String, String>,
    /// Jobs run at once.
    pub max_concurrent_jobs: u32,
    /// Timing knobs.
    pub timing: AgentTiming,
}

impl AgentConfig {
    /// A configuration with defaults for everything else: Docker when reachable (default template,
    /// default socket, owner `cynode-node-<name>`), no host executor, no labels, two jobs at once.
    pub fn new(orchestrator_url: impl Into<String>, node_key: SecretString, name: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            orchestrator_url: orchestrator_url.into(),
            node_key,
            executors: ExecutorConfig::new(format!("cynode-node-{name}")),
            name,
            labels: BTreeMap::new(),
            max_concurrent_jobs: DEFAULT_MAX_JOBS,
            timing: AgentTiming::default(),
        }
    }

    /// From `cynode-node run` flags and the environment.
    ///
    /// # Errors
    /// [`ConfigError`] saying what is missing or malformed and how to fix it.
    pub fn from_cli(args: &RunArgs, env: &Env) -> Result<Self, ConfigError> {
        let key = match &args.key_file {
            Some(path) => parse::read_key_file(path)?,
            None => env.get("CYNODE_NODE_KEY").map(|k| SecretString::from(k.trim().to_owned())).ok_or(
                ConfigError::Missing(
                    "no node key: set the CYNODE_NODE_KEY environment variable or pass --key-file FILE",
                ),
            )?,
        };
        let url = args
            .orchestrator
            .clone()
            .or_else(|| env.get("CYNODE_ORCHESTRATOR_URL").map(str::to_owned))
            .unwrap_or_else(|| DEFAULT_ORCHESTRATOR_URL.to_owned());
        let name = match args.name.clone().or_else(|| env.get("CYNODE_NODE_NAME").map(str::to_owned)) {
            Some(n) => n,
            None => parse::host_name(env.get("HOSTNAME")),
        };
        let mut config = Self::new(url, key, name.trim());
        config.executors = ExecutorConfig::from_args(&args.node, env, &format!("cynode-node-{}", config.name))?;
        for l in &args.node.labels {
            let (k, v) = parse::pair(l, "--label", "KEY=VALUE")?;
            config.labels.insert(k, v);
        }
        if let Some(n) = args.node.max_jobs {
            config.max_concurrent_jobs = n;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks the values; [`crate::agent::Agent`] calls it before starting.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        parse::url(&self.orchestrator_url)?;
        parse::node_key(self.node_key.expose_secret())?;
        if self.name.is_empty() || self.name.chars().count() > 128 || self.name.chars().any(char::is_control) {
            return Err(ConfigError::Invalid {
                setting: "node name",
                problem: "must be 1–128 printable characters (pass --name NAME)".into(),
            });
        }
        if !(1..=256).contains(&self.max_concurrent_jobs) {
            return Err(ConfigError::Invalid { setting: "--max-jobs", problem: "must be between 1 and 256".into() });
        }
        if !self.executors.docker
            && !self.executors.host
            && self.executors.inference.is_none()
            && self.executors.provider.is_none()
        {
            return Err(ConfigError::Invalid {
                setting: "executors",
                problem: "every executor is disabled: drop --no-docker, pass --enable-host-executor or --inference-url"
                    .into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
