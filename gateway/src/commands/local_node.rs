//! The node agent `cynode up` runs in-process. It speaks the node protocol over loopback to this very
//! gateway, so the one-machine path exercises the same contract as a fleet.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use cynode_node_agent::agent::{Agent, AgentHandle};
use cynode_node_agent::config::{AgentConfig, Template};
use cynode_node_agent::executor::docker::{self, Engine};
use cynode_node_agent::images;
use cynode_orchestrator::bootstrap::{self, BootstrapFile, NodeKeySpec, TemplateSpec};
use cynode_orchestrator::crypto::SecretBox;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

use crate::config::Config;

/// Default sandbox image of the built-in `busybox` template.
pub const BUSYBOX_IMAGE: &str = "cynode/busybox:latest";

/// A running local node.
pub struct LocalNode {
    handle: AgentHandle,
    stop: tokio::sync::watch::Sender<bool>,
}

impl LocalNode {
    /// Stops taking work, cancels running jobs, reports them, and waits (bounded) for the agent to end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(15), self.handle.join()).await.is_err() {
            eprintln!("cynode: the local node agent did not stop in time");
        }
    }
}

/// Seeds what the local node needs (the `busybox` template when no template exists, a node key), builds the
/// sandbox image when the engine is reachable and the image is missing, starts the agent and says what it can
/// do. Returns `None` (after saying why) when the node is disabled.
///
/// # Errors
/// Store failures; an unreachable engine is not an error (the node runs without the docker executor).
pub async fn start(
    config: &Config,
    pool: &PgPool,
    secrets: &SecretBox,
    data_dir: &Path,
    url: &str,
) -> anyhow::Result<Option<LocalNode>> {
    if !config.node.enabled {
        println!("  node       disabled (node.enabled = false): jobs wait for a `cynode-node` to register");
        return Ok(None);
    }
    let key = local_key(data_dir)?;
    let mut executors = vec!["docker".to_string()];
    if config.node.host_executor {
        executors.push("host".into());
    }
    let templates: i64 = sqlx::query_scalar("SELECT count(*) FROM templates").fetch_one(pool).await?;
    let seed = BootstrapFile {
        node_keys: vec![NodeKeySpec { name: "cynode-up".into(), key: key.clone(), executors }],
        templates: if templates == 0 { vec![default_template()] } else { Vec::new() },
        ..BootstrapFile::default()
    };
    bootstrap::import(pool, secrets, &seed, "cynode up (local node)").await?;
    let stored: Vec<(String, String)> =
        sqlx::query_as("SELECT name, image FROM templates ORDER BY name").fetch_all(pool).await?;

    let engine = docker::connect_to(config.node.docker_host.as_deref()).await;
    let engine_line = match &engine {
        Ok(e) => {
            ensure_busybox(e, &stored).await;
            match docker::probe(e).await {
                Ok(info) => format!("docker {} (API {})", info.version, info.api_version),
                Err(err) => format!("docker reachable but not answering: {err}"),
            }
        }
        Err(err) => format!("NO container engine ({err}); sandbox jobs wait until a node with Docker registers"),
    };
    let mut agent = AgentConfig::new(url, key, "local");
    agent.executors.owner = owner_of(data_dir);
    agent.executors.templates =
        stored.iter().map(|(name, image)| Template { name: name.clone(), image: image.clone() }).collect();
    agent.executors.docker = engine.is_ok();
    agent.executors.host = config.node.host_executor;
    agent.executors.docker_endpoint = config.node.docker_host.clone();
    agent.max_concurrent_jobs = config.node.max_jobs;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut handle = Agent::start(agent, rx);
    let registered = tokio::time::timeout(Duration::from_secs(10), handle.registered()).await;
    let (state, offered) = match registered {
        Ok(Some(id)) => (
            format!("registered as node {}", &id.simple().to_string()[..8]),
            cynode_orchestrator::nodes::capabilities(pool, id).await?.map(|c| c.templates),
        ),
        Ok(None) => ("stopped before registering (see the log above)".to_string(), None),
        Err(_) => ("still registering".to_string(), None),
    };
    println!("  node       local: {engine_line}; {}; {state}", templates_line(&stored, offered.as_deref()));
    if config.node.host_executor {
        println!("  WARNING    the host executor is ON: host jobs run on this machine with NO isolation");
    }
    Ok(Some(LocalNode { handle, stop }))
}

/// What the banner says about templates: only those the registered node really offers (it has their images),
/// and which stored templates it does not.
fn templates_line(stored: &[(String, String)], offered: Option<&[String]>) -> String {
    let Some(offered) = offered else { return "templates not offered yet".into() };
    let missing: Vec<&str> =
        stored.iter().map(|(n, _)| n.as_str()).filter(|n| !offered.iter().any(|o| o == n)).collect();
    let mut line = if offered.is_empty() {
        "no templates offered".to_string()
    } else {
        format!("templates {}", offered.join(", "))
    };
    if !missing.is_empty() {
        line.push_str(&format!(" (not offered, image missing: {})", missing.join(", ")));
    }
    line
}

fn default_template() -> TemplateSpec {
    let mut t: TemplateSpec = serde_json::from_value(serde_json::json!({ "name": "busybox", "image": BUSYBOX_IMAGE }))
        .unwrap_or_else(|_| unreachable!("the default template is valid"));
    t.network = false;
    t
}

async fn ensure_busybox(engine: &Engine, templates: &[(String, String)]) {
    if !templates.iter().any(|(_, image)| image == BUSYBOX_IMAGE) {
        return;
    }
    if engine.docker().inspect_image(BUSYBOX_IMAGE).await.is_ok() {
        return;
    }
    eprintln!("cynode: building the sandbox image {BUSYBOX_IMAGE} from Debian's busybox-static (once)");
    if let Err(e) = images::build_busybox_image(engine, BUSYBOX_IMAGE).await {
        eprintln!("cynode: could not build {BUSYBOX_IMAGE}: {e}; `cynode-node images build` retries it");
    }
}

/// The local node's key, kept in the data directory (0600), created on first start.
fn local_key(data_dir: &Path) -> anyhow::Result<SecretString> {
    let path = data_dir.join("node.key");
    if let Ok(k) = std::fs::read_to_string(&path) {
        return Ok(SecretString::from(k.trim().to_string()));
    }
    let key = hex_key();
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(key.expose_secret().as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(key)
}

fn hex_key() -> SecretString {
    let bytes: [u8; 32] = rand::random();
    SecretString::from(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// The container owner label of this data directory's local node. A node removes its owner's leftover sandboxes
/// when it starts, so two `cynode up` on one engine (different data directories) must not share an owner, while
/// the same data directory keeps its owner across restarts (its own leftovers are still cleaned up).
fn owner_of(data_dir: &Path) -> String {
    let path = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    // FNV-1a: stable across builds and Rust versions, unlike the standard library's hasher.
    let hash = path
        .to_string_lossy()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |acc, b| (acc ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("cynode-up-{hash:016x}")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn the_banner_lists_only_the_templates_the_node_offers() {
        let stored = [("busybox".to_string(), "a".to_string()), ("rogue".to_string(), "b".to_string())];
        let line = super::templates_line(&stored, Some(&["busybox".to_string()]));
        assert_eq!(line, "templates busybox (not offered, image missing: rogue)");
        assert_eq!(
            super::templates_line(&stored, Some(&[])),
            "no templates offered (not offered, image missing: busybox, rogue)"
        );
        assert_eq!(super::templates_line(&stored, None), "templates not offered yet");
    }

    #[test]
    fn each_data_directory_has_its_own_stable_owner() {
        let a = super::owner_of(Path::new("/nonexistent/a/.cynode"));
        assert_eq!(a, super::owner_of(Path::new("/nonexistent/a/.cynode")));
        assert_ne!(a, super::owner_of(Path::new("/nonexistent/b/.cynode")));
        assert!(a.starts_with("cynode-up-") && a.len() == "cynode-up-".len() + 16, "{a}");
    }
}
