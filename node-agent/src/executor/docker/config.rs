//! The hardened container configuration every sandbox gets.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, DeviceRequest, HostConfig, HostConfigLogConfig};

use super::pool::PoolShape;
use super::spec::{GpuRequest, SANDBOX_PATH, SandboxSpec, WORK_DIR, shell_command};
use super::warm::STUB_SCRIPT;
use super::{LABEL_ATTEMPT, LABEL_JOB, LABEL_MANAGED, LABEL_OWNER, LABEL_POOL};

/// The user every sandbox runs as (`sandbox` in the built-in images; `nobody` elsewhere).
pub const SANDBOX_USER: &str = "65534:65534";

/// Builds the create-container body for `spec`: no network unless asked, read-only root,
/// tmpfs `/tmp` and `/work`, all capabilities dropped, no-new-privileges, non-root user,
/// memory (without swap), CPU and process limits, no TTY, no engine-side log copy
/// (output is streamed through attach), an init process that forwards signals and reaps zombies.
/// Its stdin is open until the first attach ends (`StdinOnce`): the executor attaches to it for the
/// whole run and the sandbox's watchdog kills the job when it closes (the agent is gone); the job
/// itself reads `/dev/null`.
pub(crate) fn container_body(spec: &SandboxSpec, owner: &str) -> ContainerCreateBody {
    let tmpfs_opts = format!("rw,nosuid,nodev,size={},mode=1777", spec.limits.tmpfs_bytes);
    let env = sandbox_env(spec);

    let labels = HashMap::from([
        (LABEL_MANAGED.to_owned(), "true".to_owned()),
        (LABEL_OWNER.to_owned(), owner.to_owned()),
        (LABEL_JOB.to_owned(), spec.job_id.to_string()),
        (LABEL_ATTEMPT.to_owned(), spec.attempt.to_string()),
    ]);

    let host_config = HostConfig {
        network_mode: Some(if spec.network { "bridge" } else { "none" }.to_owned()),
        readonly_rootfs: Some(true),
        tmpfs: Some(HashMap::from([("/tmp".to_owned(), tmpfs_opts.clone()), (WORK_DIR.to_owned(), tmpfs_opts)])),
        cap_drop: Some(vec!["ALL".to_owned()]),
        security_opt: Some(vec!["no-new-privileges:true".to_owned()]),
        privileged: Some(false),
        pids_limit: Some(spec.limits.pids),
        memory: Some(spec.limits.memory_bytes),
        memory_swap: Some(spec.limits.memory_bytes),
        nano_cpus: Some(spec.limits.nano_cpus),
        init: Some(true),
        ipc_mode: Some("private".to_owned()),
        auto_remove: Some(false),
        log_config: Some(HostConfigLogConfig { typ: Some("none".to_owned()), config: None }),
        device_requests: spec.gpus.as_ref().map(|g| vec![device_request(g)]),
        ..Default::default()
    };

    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: Some(spec.command.clone()),
        // The image's entrypoint would otherwise wrap our argv.
        entrypoint: Some(Vec::new()),
        env: Some(env),
        working_dir: Some(spec.workdir.clone().unwrap_or_else(|| WORK_DIR.to_owned())),
        user: Some(SANDBOX_USER.to_owned()),
        hostname: Some("sandbox".to_owned()),
        labels: Some(labels),
        tty: Some(false),
        open_stdin: Some(true),
        stdin_once: Some(true),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        network_disabled: Some(!spec.network),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// The complete environment of a sandbox process: `PATH`, `HOME` and the job's allowlisted variables.
pub(crate) fn sandbox_env(spec: &SandboxSpec) -> Vec<String> {
    let mut env = vec![format!("PATH={SANDBOX_PATH}"), format!("HOME={WORK_DIR}")];
    env.extend(spec.env.iter().map(|(k, v)| format!("{k}={v}")));
    env
}

/// Builds the create-container body of an idle warm-pool container of `shape`: exactly the hardening of
/// [`container_body`] (same limits, user, mounts, init), running [`STUB_SCRIPT`] instead of a job, with
/// only `PATH` and `HOME` in its environment, and the pool label instead of job and attempt labels. The stub
/// reads its job from the stdin that the pool's attach holds from creation; it stays open while the job runs
/// (the watchdog's lifeline).
pub(crate) fn pool_body(shape: &PoolShape, owner: &str) -> ContainerCreateBody {
    let mut idle = SandboxSpec::new(uuid::Uuid::nil(), 0, shape.image.clone(), shell_command(STUB_SCRIPT));
    idle.limits.memory_bytes = shape.memory_bytes;
    idle.limits.nano_cpus = shape.nano_cpus;
    idle.limits.pids = shape.pids;
    idle.limits.tmpfs_bytes = shape.tmpfs_bytes;
    let mut body = container_body(&idle, owner);
    body.labels = Some(HashMap::from([
        (LABEL_MANAGED.to_owned(), "true".to_owned()),
        (LABEL_OWNER.to_owned(), owner.to_owned()),
        (LABEL_POOL.to_owned(), shape.image.clone()),
    ]));
    body
}

fn device_request(gpus: &GpuRequest) -> DeviceRequest {
    let (count, device_ids) = match gpus {
        GpuRequest::All => (Some(-1), None),
        GpuRequest::Count(n) => (Some(i64::from(*n)), None),
        GpuRequest::Devices(ids) => (None, Some(ids.clone())),
    };
    DeviceRequest {
        driver: Some("nvidia".to_owned()),
        count,
        device_ids,
        capabilities: Some(vec![vec!["gpu".to_owned()]]),
        options: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::docker::spec::shell_command;
    use uuid::Uuid;

    fn spec() -> SandboxSpec {
        let mut s = SandboxSpec::new(Uuid::nil(), 2, "img", shell_command("true"));
        s.env.push(("A".into(), "b".into()));
        s
    }

    #[test]
    fn hardened_defaults() {
        let body = container_body(&spec(), "me");
        let hc = body.host_config.as_ref().expect("host config");
        assert_eq!(hc.network_mode.as_deref(), Some("none"));
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert_eq!(hc.cap_drop.as_deref(), Some(&["ALL".to_owned()][..]));
        assert_eq!(hc.memory, hc.memory_swap);
        assert_eq!(body.user.as_deref(), Some(SANDBOX_USER));
        // Open for the watchdog, closed when the executor's attach ends.
        assert_eq!((body.open_stdin, body.stdin_once, body.attach_stdin), (Some(true), Some(true), Some(true)));
        assert_eq!(body.network_disabled, Some(true));
        let env = body.env.expect("env");
        assert_eq!(env, ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/work", "A=b"]);
        let labels = body.labels.expect("labels");
        assert_eq!(labels[LABEL_ATTEMPT], "2");
        assert_eq!(labels[LABEL_OWNER], "me");
        assert!(hc.device_requests.is_none());
    }

    #[test]
    fn pool_containers_get_the_same_hardening_without_job_labels() {
        let mut s = spec();
        s.env.clear();
        s.limits.memory_bytes = 64 * 1024 * 1024;
        let shape = PoolShape::of(&s).expect("poolable");
        let pool = pool_body(&shape, "me");
        let mut cold = container_body(&s, "me");
        let labels = pool.labels.clone().expect("labels");
        assert_eq!(labels[LABEL_POOL], "img");
        assert_eq!(labels[LABEL_OWNER], "me");
        assert!(!labels.contains_key(LABEL_JOB) && !labels.contains_key(LABEL_ATTEMPT));
        assert_eq!(pool.cmd.as_deref(), Some(&shell_command(STUB_SCRIPT)[..]));
        // Its stdin is open while the agent's attach lasts.
        assert_eq!((pool.open_stdin, pool.stdin_once, pool.attach_stdin), (Some(true), Some(true), Some(true)));
        // Everything else is identical to a cold sandbox of the same limits.
        cold.labels.clone_from(&pool.labels);
        cold.cmd.clone_from(&pool.cmd);
        assert_eq!(cold, pool);
    }

    #[test]
    fn network_and_gpus_on_request() {
        let mut s = spec();
        s.network = true;
        s.gpus = Some(GpuRequest::Count(1));
        let body = container_body(&s, "me");
        let hc = body.host_config.expect("host config");
        assert_eq!(hc.network_mode.as_deref(), Some("bridge"));
        let req = &hc.device_requests.expect("device requests")[0];
        assert_eq!(req.count, Some(1));
    }
}
