//! The open-loop runner: one step per offered rate, requests launched on schedule, latency from the schedule.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::event::{Prepared, Signer};
use crate::report::{Latencies, Step};

/// Options of `cynode-loadgen run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The Slack events URL, e.g. `http://127.0.0.1:8080/slack/events`.
    #[arg(long)]
    pub url: String,
    /// A name for the target in the output (`cynode`, `bolt`, …).
    #[arg(long, default_value = "target")]
    pub label: String,
    /// Offered rates in requests per second, one step each.
    #[arg(long, value_delimiter = ',', default_value = "1000,2000,5000")]
    pub rates: Vec<u32>,
    /// Seconds each step offers load.
    #[arg(long, default_value_t = 10)]
    pub duration_s: u64,
    /// Seconds of load at the first rate before the first step, not measured (connections, caches).
    #[arg(long, default_value_t = 2)]
    pub warmup_s: u64,
    /// Seconds of quiet between steps.
    #[arg(long, default_value_t = 3)]
    pub pause_s: u64,
    /// A request without an answer after this many seconds counts as an error.
    #[arg(long, default_value_t = 10)]
    pub timeout_s: u64,
    /// The Slack signing secret.
    #[arg(long, default_value = "8f742231b10e8888abcd99yyyzzz85a5")]
    pub secret: String,
    /// `team_id` of the events.
    #[arg(long, default_value = "T1DC2JH3J")]
    pub team: String,
    /// `api_app_id` of the events.
    #[arg(long, default_value = "A0123456789")]
    pub app: String,
    /// What the mentions say after the bot mention.
    #[arg(long, default_value = "help")]
    pub text: String,
    /// Distinct users the events cycle through.
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// Distinct channels the events cycle through.
    #[arg(long, default_value_t = 100)]
    pub channels: usize,
}

enum Outcome {
    Ok(Duration),
    Failed,
}

/// Runs every step and prints one JSON line per offered rate.
///
/// # Errors
/// When the client cannot be built or events cannot be signed.
pub async fn run(args: &RunArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::MAX)
        .timeout(Duration::from_secs(args.timeout_s))
        .build()?;
    let signer = Signer {
        secret: args.secret.clone(),
        team: args.team.clone(),
        app: args.app.clone(),
        text: args.text.clone(),
        users: args.users,
        channels: args.channels,
    };
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let first = args.rates.first().copied().unwrap_or(100);
    if args.warmup_s > 0 {
        step(&client, args, &signer, &format!("{run_id}w"), first, Duration::from_secs(args.warmup_s)).await?;
        tokio::time::sleep(Duration::from_secs(args.pause_s)).await;
    }
    for (n, rate) in args.rates.iter().enumerate() {
        let prefix = format!("{run_id}s{n}");
        let result = step(&client, args, &signer, &prefix, *rate, Duration::from_secs(args.duration_s)).await?;
        println!("{}", serde_json::to_string(&result)?);
        tokio::time::sleep(Duration::from_secs(args.pause_s)).await;
    }
    Ok(())
}

/// Offers `rate` requests a second for `duration`, then waits for every answer.
async fn step(
    client: &reqwest::Client,
    args: &RunArgs,
    signer: &Signer,
    prefix: &str,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<Step> {
    let rate = rate.max(1);
    let count = usize::try_from(u64::from(rate) * duration.as_secs()).unwrap_or(usize::MAX);
    let now_unix = i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs())?;
    let events: Vec<Prepared> = signer.prepare(prefix, count, now_unix)?;
    let url: Arc<str> = args.url.as_str().into();
    let (tx, mut rx) = mpsc::unbounded_channel::<Outcome>();
    let interval = Duration::from_secs(1).as_secs_f64() / f64::from(rate);
    let start = Instant::now() + Duration::from_millis(20);
    for (i, event) in events.into_iter().enumerate() {
        #[expect(clippy::cast_precision_loss, reason = "request indexes are far below 2^52")]
        let due = start + Duration::from_secs_f64(interval * i as f64);
        tokio::time::sleep_until(due.into()).await;
        let request = client
            .post(url.as_ref())
            .header("content-type", "application/json")
            .header("x-slack-request-timestamp", event.timestamp)
            .header("x-slack-signature", event.signature)
            .body(event.body);
        let tx = tx.clone();
        tokio::spawn(async move {
            let outcome = match request.send().await {
                Ok(r) if r.status().is_success() => match r.bytes().await {
                    Ok(_) => Outcome::Ok(due.elapsed()),
                    Err(_) => Outcome::Failed,
                },
                _ => Outcome::Failed,
            };
            let _ = tx.send(outcome);
        });
    }
    drop(tx);
    let mut latencies = Latencies::with_capacity(count);
    let mut errors = 0u64;
    let mut last = start;
    while let Some(outcome) = rx.recv().await {
        match outcome {
            Outcome::Ok(latency) => latencies.push(latency),
            Outcome::Failed => errors += 1,
        }
        last = Instant::now();
    }
    let elapsed = last.saturating_duration_since(start).max(duration);
    Ok(Step::new(&args.label, rate, count, errors, elapsed, latencies))
}
