//! Sandbox start latency on the real engine: request → first output byte and request → exit
//! (container removed) for `echo hi` on the busybox template, through our executor (cold: a new
//! container per job; warm: a container from the warm pool, whose waiting stub shell gets the job on
//! stdin and `exec`s it) and through the `docker` CLI side by side in the same run (interleaved, so all
//! see the same conditions). Before each warm sample the pool is refilled (not timed), as it would be
//! between jobs that are not back to back.
//!
//! Run: `cargo bench -p cynode-node-agent --bench sandbox_start`
//! (`-- N` sets the iterations per variant; default 30).

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cynode_node_agent::executor::docker::{
    DockerExecutor, ExitStatusKind, PoolConfig, SandboxLimits, SandboxSpec, cleanup_leftovers, connect, probe,
    shell_command,
};
use cynode_node_agent::images::build_busybox_image;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const IMAGE: &str = "cynode/busybox:bench";
const OWNER: &str = "cynode-bench";

/// Hardening flags equivalent to what the executor applies, for the "hardened CLI" variant.
const HARDENED: &[&str] = &[
    "--network=none",
    "--read-only",
    "--tmpfs=/tmp:rw,nosuid,nodev,size=67108864,mode=1777",
    "--tmpfs=/work:rw,nosuid,nodev,size=67108864,mode=1777",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges:true",
    "--user=65534:65534",
    "--pids-limit=256",
    "--memory=512m",
    "--memory-swap=512m",
    "--cpus=1",
    "--init",
    "--log-driver=none",
];

struct Sample {
    first_byte: Duration,
    exit: Duration,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let n: usize = match std::env::args().skip(1).find(|a| !a.starts_with('-')) {
        Some(a) => a.parse().context("the argument is the iteration count")?,
        None => 30,
    };
    let engine = connect().await?;
    let info = probe(&engine).await?;
    build_busybox_image(&engine, IMAGE).await?;
    cleanup_leftovers(&engine, OWNER).await?;
    let exec = DockerExecutor::new(engine.clone(), [IMAGE]).with_owner(OWNER);
    let warm = DockerExecutor::new(engine, [IMAGE])
        .with_owner(OWNER)
        .with_warm_pool(&PoolConfig { size: 1, limits: SandboxLimits::default() });
    let pool = warm.warm_pool().context("a pool")?;
    println!(
        "engine: {} {} (API {}), {} {}, {} CPUs; {n} iterations per variant, 3 warm-up; pool size 1, refilled before each warm sample",
        info.product,
        info.version,
        info.api_version,
        info.os,
        info.arch,
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );

    let (mut ours, mut pooled, mut cli, mut hardened) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..n + 3 {
        let a = executor_once(&exec).await?;
        if !pool.wait_ready(Duration::from_secs(60)).await {
            bail!("the warm pool did not refill: {:?}", pool.stats());
        }
        let w = executor_once(&warm).await?;
        let b = cli_once(&[]).await?;
        let c = cli_once(HARDENED).await?;
        if i >= 3 {
            ours.push(a);
            pooled.push(w);
            cli.push(b);
            hardened.push(c);
        }
    }
    let stats = pool.stats();
    warm.shutdown_pool().await;
    if stats.hits != (n + 3) as u64 {
        bail!("not every warm sample ran in a pool container: {stats:?}");
    }

    println!("\n{:<46} {:>8} {:>8} {:>8}", "variant / metric (ms)", "p50", "p90", "p99");
    for (name, samples) in [
        ("executor, cold (hardened)", &ours),
        ("executor, warm pool (hardened)", &pooled),
        ("docker run --rm", &cli),
        ("docker run --rm + same hardening", &hardened),
    ] {
        let first: Vec<_> = samples.iter().map(|s| s.first_byte).collect();
        let exit: Vec<_> = samples.iter().map(|s| s.exit).collect();
        row(&format!("{name}: first byte"), &first);
        row(&format!("{name}: exit"), &exit);
    }
    let p50 = |s: &[Sample], f: fn(&Sample) -> Duration| percentile(&s.iter().map(f).collect::<Vec<_>>(), 50.0);
    for (label, f) in
        [("first byte", (|s: &Sample| s.first_byte) as fn(&Sample) -> Duration), ("exit", |s: &Sample| s.exit)]
    {
        let (cold, warm, cli) =
            (p50(&ours, f).as_secs_f64(), p50(&pooled, f).as_secs_f64(), p50(&cli, f).as_secs_f64());
        println!(
            "ratio p50 {label}: cold executor / docker run = {:.2}x, warm executor / docker run = {:.2}x, \
             cold / hardened docker run = {:.2}x",
            cold / cli,
            warm / cli,
            cold / p50(&hardened, f).as_secs_f64()
        );
    }
    Ok(())
}

async fn executor_once(exec: &DockerExecutor) -> anyhow::Result<Sample> {
    let spec = SandboxSpec::new(uuid::Uuid::now_v7(), 1, IMAGE, shell_command("echo hi"));
    let (tx, mut rx) = mpsc::channel(16);
    let start = Instant::now();
    let run = exec.run(spec, CancellationToken::new(), tx);
    let first = async {
        let first = rx.recv().await.map(|_| start.elapsed());
        while rx.recv().await.is_some() {}
        first
    };
    let (outcome, first) = tokio::join!(run, first);
    let exit = start.elapsed();
    if outcome?.status != ExitStatusKind::Exited(0) {
        bail!("echo hi did not exit 0");
    }
    Ok(Sample { first_byte: first.context("no output")?, exit })
}

async fn cli_once(flags: &[&str]) -> anyhow::Result<Sample> {
    let start = Instant::now();
    let mut child = tokio::process::Command::new("docker")
        .arg("run")
        .arg("--rm")
        .args(flags)
        .args([IMAGE, "echo", "hi"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("spawn docker")?;
    let mut stdout = child.stdout.take().context("stdout")?;
    let mut byte = [0u8; 1];
    stdout.read_exact(&mut byte).await.context("read docker output")?;
    let first_byte = start.elapsed();
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).await?;
    let status = child.wait().await?;
    let exit = start.elapsed();
    if !status.success() {
        bail!("docker run failed: {status}");
    }
    Ok(Sample { first_byte, exit })
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // nearest rank
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn row(name: &str, samples: &[Duration]) {
    let ms = |p| percentile(samples, p).as_secs_f64() * 1000.0;
    println!("{name:<46} {:>8.1} {:>8.1} {:>8.1}", ms(50.0), ms(90.0), ms(99.0));
}
