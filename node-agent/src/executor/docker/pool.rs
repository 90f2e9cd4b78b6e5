//! The warm pool: per template image, a few pre-created, already running sandbox containers with the
//! full hardening of a cold sandbox, each waiting in a stub shell for its job on stdin (attached to since
//! its creation). A job whose limits match takes one and becomes its main process (see [`super::warm`]);
//! the container is destroyed after that one job, never reused, and a background task creates its
//! replacement.
//!
//! Jobs that cannot use the pool run cold: jobs with network access or GPUs, jobs whose memory, CPU,
//! process or tmpfs limits differ from the pool's (the other limits — time, output — are enforced by the
//! executor, not the container), and any job that arrives when the pool is empty. When jobs of one image
//! keep arriving with other limits ([`RETARGET_AFTER`] in a row with the same limits), the pool of that
//! image switches to those limits, so a template whose defaults differ from the configured ones gets warm
//! after its first jobs.
//!
//! Pool containers carry the owner label (so [`cleanup_leftovers`](super::cleanup_leftovers) at start
//! removes those of a crashed agent) and [`LABEL_POOL`](super::LABEL_POOL). An idle container whose attach
//! connection goes away (the agent died, the engine dropped it) sees its stdin close and exits by itself.

mod refill;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::engine::Engine;
use super::spec::{SandboxLimits, SandboxSpec};
use super::warm::{Idle, runs_in_stub};

/// Consecutive jobs of one image with the same other limits after which its pool switches to them.
pub const RETARGET_AFTER: u32 = 2;

/// The container-level settings a pool container is created with; a job can use it only when its own
/// are identical.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolShape {
    /// Image reference.
    pub image: String,
    /// Memory limit in bytes.
    pub memory_bytes: i64,
    /// CPU limit in billionths of a CPU.
    pub nano_cpus: i64,
    /// Process limit.
    pub pids: i64,
    /// Size of each tmpfs mount in bytes.
    pub tmpfs_bytes: i64,
}

impl PoolShape {
    /// The shape of `image` with `limits`.
    pub fn new(image: impl Into<String>, limits: &SandboxLimits) -> Self {
        Self {
            image: image.into(),
            memory_bytes: limits.memory_bytes,
            nano_cpus: limits.nano_cpus,
            pids: limits.pids,
            tmpfs_bytes: limits.tmpfs_bytes,
        }
    }

    /// The shape `spec` needs, or `None` when it must run cold: network access, GPUs, a working directory
    /// other than [`WORK_DIR`](super::WORK_DIR), or a program name starting with `-` (which the pool's stub
    /// shell would take for an option).
    pub fn of(spec: &SandboxSpec) -> Option<Self> {
        (!spec.network && spec.gpus.is_none() && runs_in_stub(spec))
            .then(|| Self::new(spec.image.clone(), &spec.limits))
    }
}

/// How many containers to keep warm, and with which limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Idle containers kept per image (0 disables the pool).
    pub size: usize,
    /// Limits pool containers start with (until jobs ask for others, see [`RETARGET_AFTER`]).
    pub limits: SandboxLimits,
}

/// Counters of one pool, for tests, benchmarks and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Jobs that ran in a warm container.
    pub hits: u64,
    /// Jobs that could not use the pool (network, GPUs, other limits, image without a pool).
    pub misses: u64,
    /// Jobs that found the pool of their shape empty.
    pub empty: u64,
    /// Warm containers that turned out unusable (stopped or gone) and were discarded.
    pub discarded: u64,
    /// Idle containers now.
    pub idle: usize,
}

/// See [`WarmPool::refiller`].
#[derive(Debug, Clone)]
pub(crate) struct Refiller(std::sync::Weak<Shared>);

impl Refiller {
    /// [`WarmPool::refill_soon`], if the pool still exists.
    pub(crate) fn refill_soon(&self) {
        if let Some(shared) = self.0.upgrade() {
            shared.wake.notify_one();
        }
    }
}

/// One image's pool.
#[derive(Debug)]
struct Slot {
    shape: PoolShape,
    idle: Vec<Idle>,
    creating: usize,
    /// A different shape jobs asked for, and how many times in a row.
    wanted: Option<(PoolShape, u32)>,
}

#[derive(Debug, Default)]
struct State {
    slots: HashMap<String, Slot>,
    /// Idle containers no longer wanted (after a retarget), to be removed by the refill task.
    retired: Vec<Idle>,
    stats: PoolStats,
    stopped: bool,
}

/// What the pool handle and its refill task share.
#[derive(Debug)]
struct Shared {
    engine: Engine,
    owner: String,
    size: usize,
    state: Mutex<State>,
    wake: Notify,
    stop: CancellationToken,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going with it.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A warm pool of sandbox containers on one engine. Dropping it stops the refill and removes the idle
/// containers in the background; [`WarmPool::shutdown`] does the same and waits for it.
#[derive(Debug)]
pub struct WarmPool {
    shared: Arc<Shared>,
    refill: Mutex<Option<JoinHandle<()>>>,
}

impl WarmPool {
    /// Starts a pool of `config.size` containers for each of `images` and its refill task.
    ///
    /// # Panics
    /// When called outside a Tokio runtime.
    pub(crate) fn start<'a>(
        engine: Engine,
        owner: &str,
        images: impl IntoIterator<Item = &'a String>,
        config: &PoolConfig,
    ) -> Self {
        let slots = images
            .into_iter()
            .map(|image| {
                let slot = Slot {
                    shape: PoolShape::new(image.clone(), &config.limits),
                    idle: Vec::new(),
                    creating: 0,
                    wanted: None,
                };
                (image.clone(), slot)
            })
            .collect();
        let shared = Arc::new(Shared {
            engine,
            owner: owner.to_owned(),
            size: config.size,
            state: Mutex::new(State { slots, ..State::default() }),
            wake: Notify::new(),
            stop: CancellationToken::new(),
        });
        let task = tokio::spawn(refill::refill_loop(shared.clone()));
        Self { shared, refill: Mutex::new(Some(task)) }
    }

    /// Takes a warm container for `spec`, if there is one of its shape; `None` means: run it cold. The
    /// replacement is created after [`WarmPool::refill_soon`].
    pub(crate) fn take(&self, spec: &SandboxSpec) -> Option<Idle> {
        let shape = PoolShape::of(spec);
        let mut state = self.shared.lock();
        let state = &mut *state;
        let Some(slot) = state.slots.get_mut(&spec.image).filter(|_| !state.stopped) else {
            state.stats.misses += 1;
            return None;
        };
        let Some(shape) = shape else {
            state.stats.misses += 1;
            return None;
        };
        if shape != slot.shape {
            state.stats.misses += 1;
            let count = match &slot.wanted {
                Some((wanted, n)) if *wanted == shape => n + 1,
                _ => 1,
            };
            if count >= RETARGET_AFTER {
                tracing::info!(
                    image = spec.image,
                    memory_bytes = shape.memory_bytes,
                    pids = shape.pids,
                    nano_cpus = shape.nano_cpus,
                    "warm pool switches to the limits recent jobs ask for"
                );
                state.retired.append(&mut slot.idle);
                slot.shape = shape;
                slot.wanted = None;
                self.shared.wake.notify_one();
            } else {
                slot.wanted = Some((shape, count));
            }
            return None;
        }
        slot.wanted = None;
        let Some(idle) = slot.idle.pop() else {
            state.stats.empty += 1;
            return None;
        };
        state.stats.hits += 1;
        Some(idle)
    }

    /// Lets the refill replace taken containers now. Taking one does not: creating its replacement would
    /// compete with starting the job in the same engine, so the executor calls this once the job's process
    /// has had time to start (or the job has ended).
    pub(crate) fn refill_soon(&self) {
        self.shared.wake.notify_one();
    }

    /// A handle that can call [`WarmPool::refill_soon`] later without keeping the pool alive.
    pub(crate) fn refiller(&self) -> Refiller {
        Refiller(Arc::downgrade(&self.shared))
    }

    /// Counts a taken container that turned out unusable (the job then runs cold).
    pub(crate) fn discarded(&self) {
        self.shared.lock().stats.discarded += 1;
        self.shared.wake.notify_one();
    }

    /// The counters, and the idle containers now.
    pub fn stats(&self) -> PoolStats {
        let state = self.shared.lock();
        PoolStats { idle: state.slots.values().map(|s| s.idle.len()).sum(), ..state.stats }
    }

    /// Waits until every image's pool holds its full number of idle containers, or `limit` passes;
    /// returns whether it got there.
    pub async fn wait_ready(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let full = {
                let state = self.shared.lock();
                state.slots.values().all(|s| s.idle.len() >= self.shared.size)
            };
            if full {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops refilling and removes every idle container; waits for a container being created to be
    /// removed too. Returns how many idle containers the pool held. Jobs run cold afterwards.
    pub async fn shutdown(&self) -> usize {
        self.shared.stop.cancel();
        self.shared.wake.notify_one();
        let task = self.refill.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(task) = task
            && tokio::time::timeout(Duration::from_secs(30), task).await.is_err()
        {
            tracing::warn!("the warm pool's refill did not stop in time");
        }
        let ids = drain(&self.shared);
        let count = ids.len();
        refill::remove_all(&self.shared.engine, ids).await;
        if count > 0 {
            tracing::info!(count, "removed the warm pool's idle sandbox containers");
        }
        count
    }
}

/// Marks the pool stopped and takes every idle and retired container id out of it.
fn drain(shared: &Shared) -> Vec<String> {
    let mut state = shared.lock();
    state.stopped = true;
    let mut ids = std::mem::take(&mut state.retired);
    for slot in state.slots.values_mut() {
        ids.append(&mut slot.idle);
    }
    // Dropping the attach connections closes the stubs' stdin: they exit even if removal fails.
    ids.into_iter().map(|idle| idle.id).collect()
}

impl Drop for WarmPool {
    fn drop(&mut self) {
        self.shared.stop.cancel();
        self.shared.wake.notify_one();
        let ids = drain(&self.shared);
        if ids.is_empty() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let engine = self.shared.engine.clone();
                handle.spawn(async move { refill::remove_all(&engine, ids).await });
            }
            Err(_) => tracing::warn!(
                count = ids.len(),
                "warm pool containers left behind (no runtime to remove them); the next start cleans them up"
            ),
        }
    }
}

#[cfg(test)]
mod tests;
