//! The deliverer: claims due deliveries, sends them, records the outcome, schedules retries and disables
//! subscriptions that answer 410 Gone or keep failing.
//!
//! Invariants:
//! - a delivery is claimed by one deliverer at a time: a claim is one `UPDATE … FROM (SELECT … FOR UPDATE SKIP
//!   LOCKED)` statement that sets a fresh `claim_token` and moves `next_attempt_at` to the claim's expiry
//!   (timeout + [`DelivererSettings::claim_margin`]), so a crashed replica's claims become due again by
//!   themselves;
//! - outcomes are recorded only under the claim's token and while the delivery is still `pending`, so a late
//!   answer from an expired claim, or one for a subscription disabled meanwhile, changes nothing.

mod record;
mod recorder;
mod send;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use super::OutboxWaker;
use crate::crypto::SecretBox;
use crate::outbound_guard::OutboundGuard;
use record::Claimed;
use recorder::Done;

/// The Standard Webhooks retry schedule after the immediate first attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
/// 10 h — eight attempts over about 27.6 hours.
pub fn standard_schedule() -> Vec<Duration> {
    [5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600].map(Duration::from_secs).to_vec()
}

/// Knobs of the deliverer. The defaults are the production values.
#[derive(Debug, Clone)]
pub struct DelivererSettings {
    /// Delays between attempts: after attempt `n` fails, attempt `n + 1` is due `schedule[n - 1]` later (the
    /// first attempt is immediate). When it runs out, the delivery is `dead`. Default [`standard_schedule`].
    pub schedule: Vec<Duration>,
    /// Whole-request timeout (connect, send, response headers and the first 4 KiB of body). Default 15 s.
    pub timeout: Duration,
    /// Most deliveries in flight at once on this replica (also the largest claim batch). Default 64 (measured
    /// against 32 and 128 in `docs/benchmarks.md`).
    pub concurrency: usize,
    /// Look for due deliveries at least this often without a wake-up (deliveries emitted on other replicas or by
    /// database triggers — `job.started`, `job.output` —, retries). Default 250 ms: an idle poll is one cheap
    /// index probe, and it bounds those events' extra latency well inside the 1 s delivery target.
    pub poll_interval: Duration,
    /// A claim lasts `timeout + claim_margin`; after that, another replica may retry the delivery. Default 10 s.
    pub claim_margin: Duration,
    /// A subscription all of whose attempts failed for this long is disabled. Default 5 days.
    pub disable_after: Duration,
    /// `Retry-After` (on 429, 502, 503, 504) is honoured when longer than the schedule's delay, up to this.
    /// Default 24 h.
    pub max_retry_after: Duration,
    /// Which addresses receivers may have: by default no internal one (loopback, private, link-local, …),
    /// checked on the address each connection is opened to (configuration `outbound.allow_cidrs`).
    pub guard: OutboundGuard,
}

impl Default for DelivererSettings {
    fn default() -> Self {
        Self {
            schedule: standard_schedule(),
            timeout: Duration::from_secs(15),
            concurrency: 64,
            poll_interval: Duration::from_millis(250),
            claim_margin: Duration::from_secs(10),
            disable_after: Duration::from_secs(5 * 24 * 3600),
            max_retry_after: Duration::from_secs(24 * 3600),
            guard: OutboundGuard::default(),
        }
    }
}

/// Sends outbox deliveries. Run one per replica with [`Deliverer::spawn`]; many may share a database.
#[derive(Debug, Clone)]
pub struct Deliverer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    secrets: SecretBox,
    settings: DelivererSettings,
    http: reqwest::Client,
    waker: OutboxWaker,
    permits: Arc<Semaphore>,
    recorder: mpsc::Sender<Done>,
    /// Taken by the first [`Deliverer::spawn`], which starts the recorder task.
    recorder_rx: Mutex<Option<mpsc::Receiver<Done>>>,
}

/// Longest wait for more free slots before claiming, while there is a backlog.
const GATHER: Duration = Duration::from_millis(5);

/// Shortest idle sleep, so a due-but-unclaimable row cannot make the loop spin.
const MIN_NAP: Duration = Duration::from_millis(10);

impl Deliverer {
    /// A deliverer over `pool`; `secrets` opens the subscriptions' signing secrets.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no usable TLS configuration).
    pub fn new(pool: PgPool, secrets: SecretBox, settings: DelivererSettings) -> Result<Self, reqwest::Error> {
        let concurrency = settings.concurrency.max(1);
        let http = settings
            .guard
            .client_builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(concurrency)
            .user_agent(concat!("CyNode-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let settings = DelivererSettings { concurrency, ..settings };
        let permits = Arc::new(Semaphore::new(concurrency));
        let (recorder, rx) = mpsc::channel(concurrency);
        let inner = Inner {
            pool,
            secrets,
            settings,
            http,
            waker: OutboxWaker::default(),
            permits,
            recorder,
            recorder_rx: Mutex::new(Some(rx)),
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The handle that wakes this deliverer; give it to code that calls [`super::emit`].
    pub fn waker(&self) -> OutboxWaker {
        self.inner.waker.clone()
    }

    /// Wakes this deliverer (same as `self.waker().announce()`). Call after committing an emit.
    pub fn announce(&self) {
        self.inner.waker.announce();
    }

    /// The settings in force.
    pub fn settings(&self) -> &DelivererSettings {
        &self.inner.settings
    }

    /// Starts the delivery loop. When `shutdown` turns true it stops claiming and waits (up to one claim
    /// lifetime) for deliveries in flight; whatever it could not finish is retried by any replica later.
    pub fn spawn(&self, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        if let Some(rx) = self.inner.recorder_rx.lock().ok().and_then(|mut r| r.take()) {
            let i = &self.inner;
            tokio::spawn(recorder::run(i.pool.clone(), i.settings.clone(), i.waker.clone(), rx));
        }
        let inner = self.inner.clone();
        tokio::spawn(async move { inner.run(shutdown).await })
    }
}

impl Inner {
    fn claim_ttl(&self) -> Duration {
        self.settings.timeout + self.settings.claim_margin
    }

    async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut backlog = false;
        while !*shutdown.borrow() {
            let first = tokio::select! {
                p = self.permits.clone().acquire_owned() => p.ok(),
                _ = shutdown.changed() => None,
            };
            let Some(first) = first else { break };
            let permits = self.gather(first, backlog).await;
            let want = permits.len();
            match record::claim(&self.pool, want, self.claim_ttl()).await {
                Ok(claimed) => {
                    let got = claimed.len();
                    backlog = got == want;
                    for (delivery, permit) in claimed.into_iter().zip(permits) {
                        let me = self.clone();
                        tokio::spawn(async move { me.deliver(delivery, permit).await });
                    }
                    if got == want {
                        continue;
                    }
                }
                Err(e) => {
                    backlog = false;
                    tracing::warn!(error = %e, "claiming webhook deliveries failed; retrying");
                }
            }
            let nap = match record::next_due(&self.pool).await {
                Ok(Some(due)) => due.clamp(MIN_NAP, self.settings.poll_interval),
                _ => self.settings.poll_interval,
            };
            tokio::select! {
                () = self.waker.notify().notified() => {},
                () = tokio::time::sleep(nap) => {},
                _ = shutdown.changed() => {},
            }
        }
        let all = u32::try_from(self.settings.concurrency).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(self.claim_ttl(), self.permits.acquire_many(all)).await;
    }

    /// More permits to claim with. While a backlog is being worked off, waits up to [`GATHER`] for a quarter of
    /// them, so claims stay batched instead of degrading to one row per statement.
    async fn gather(&self, first: OwnedSemaphorePermit, backlog: bool) -> Vec<OwnedSemaphorePermit> {
        let batch = self.settings.concurrency;
        let mut permits = vec![first];
        let deadline = tokio::time::Instant::now() + GATHER;
        while permits.len() < batch {
            match self.permits.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) if backlog && permits.len() < batch / 4 => {
                    match tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned()).await {
                        Ok(Ok(p)) => permits.push(p),
                        _ => break,
                    }
                }
                Err(_) => break,
            }
        }
        permits
    }

    async fn deliver(self: Arc<Self>, d: Claimed, permit: OwnedSemaphorePermit) {
        let started = std::time::Instant::now();
        let outcome = match super::secrets::signing_keys(&self.secrets, &d.name, &d.secrets, d.secrets_retire_at) {
            Ok(keys) if !keys.is_empty() => {
                send::attempt(&self.http, &self.settings.guard, &d, &keys, self.settings.timeout).await
            }
            Ok(_) => send::Outcome::internal("the subscription has no usable signing secret"),
            Err(_) => send::Outcome::internal("the signing secrets could not be decrypted (wrong master key?)"),
        };
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        // The permit travels with the outcome and is released once it is written, so a 410 stops this replica
        // before it sends anything more.
        let done = Done { claimed: d, outcome, duration_ms, permit };
        if let Err(mpsc::error::SendError(done)) = self.recorder.send(done).await {
            recorder::write_one(&self.pool, &self.settings, &done).await;
        }
    }
}
