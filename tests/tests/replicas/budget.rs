//! Scenario 5, the shared platform budget: 50 streams spread over the three replicas post into a few channels of
//! one workspace at once, against the fake Slack enforcing Slack's own rates (`chat.postMessage` about one a
//! second per channel, with a small burst). The replicas pace their posts with budgets kept in PostgreSQL, shared by
//! all of them, so together they stay under the platform's limit: not a single 429. A replica pacing only itself
//! would post three times as fast into a channel and be refused.
//!
//! Sized for CI: 50 streams in 5 channels (10 posts a channel, about 10 s of Slack's per-channel budget); each job
//! waits for an approval nobody gives, so each stream's update is its approval card, and the workspace-wide
//! `chat.update` budget (50 a minute) is not what is measured here. The fake answers each post after 150 ms, as
//! real posts take 100–300 ms; the posts in flight tell which replica sent them. Prints p50/p99 of the time from an
//! event's acknowledgement to its card's `chat.postMessage` at the fake.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cynode_tests::fakes::FakeSlack;
use futures_util::StreamExt as _;

use crate::support::{APPROVER, Deployment, eventually, mention_by};

/// Streams at once.
const STREAMS: usize = 50;
/// Channels they post into (each channel's post budget is shared by the replicas).
const CHANNELS: usize = 5;

fn channel(n: usize) -> String {
    format!("CBUDGET{:02}", n % CHANNELS)
}

fn thread(n: usize) -> String {
    format!("17003000{n:02}.000100")
}

/// The `percent`th percentile of `sorted` (nearest rank).
fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    let i = (sorted.len().saturating_sub(1) * percent).div_ceil(100);
    sorted.get(i).copied().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_streams_over_three_replicas_share_slacks_budget_without_a_single_429() {
    let _serial = crate::support::serial().await;
    let slack = FakeSlack::builder().answer_posts_late(Duration::from_millis(150)).start().await;
    let policy = format!("policy:\n  - {{when: {{template: [busybox]}}, approvers: ['{APPROVER}']}}\n");
    let d = Deployment::start(slack, &policy, &[], false).await;
    let slack = &d.slack;

    // Which replica sends each post: sampled from the posts in flight while the cards go out.
    let done = AtomicBool::new(false);
    let sample = async {
        let mut peers = Vec::new();
        while !done.load(Ordering::Relaxed) {
            peers.extend(slack.in_flight().into_iter().map(|f| f.peer));
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        peers
    };
    let run = async {
        let lb = d.cluster.lb_url();
        let acked: Vec<(usize, u16, Duration)> = futures_util::stream::iter(0..STREAMS)
            .map(|n| {
                let (user, event) = (format!("UBUDGET{n:02}"), format!("EvBUDGET{n:03}"));
                let body = mention_by(&user, &event, &channel(n), &thread(n), "run echo hi");
                let (d, lb) = (&d, &lb);
                async move {
                    let status = d.deliver_as_slack(lb, &body).await;
                    (n, status, d.slack.started().elapsed())
                }
            })
            .buffer_unordered(STREAMS)
            .collect()
            .await;
        assert!(
            acked.iter().all(|(_, s, _)| *s == 200),
            "every event acknowledged: {acked:?}\n{}",
            d.cluster.all_output()
        );
        eventually(
            Duration::from_secs(60),
            "an approval card in every thread",
            || async {
                (0..STREAMS).all(|n| !slack.messages_in(&channel(n), Some(&thread(n))).is_empty()).then_some(())
            },
            || {
                let missing = (0..STREAMS).filter(|n| slack.messages_in(&channel(*n), Some(&thread(*n))).is_empty());
                format!("threads without a card: {:?}\n{}", missing.collect::<Vec<_>>(), d.cluster.all_output())
            },
        )
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        done.store(true, Ordering::Relaxed);
        acked
    };
    let (peers, acked) = tokio::join!(sample, run);
    let posters: BTreeSet<usize> = peers.into_iter().filter_map(|p| d.cluster.replica_of_peer(p)).collect();

    // One card per thread, and the budget held: no call refused, not one 429.
    for n in 0..STREAMS {
        assert_eq!(slack.messages_in(&channel(n), Some(&thread(n))).len(), 1, "one card in thread {n}");
    }
    let posts = slack.calls_to("chat.postMessage");
    let mut latency: Vec<Duration> = acked
        .iter()
        .map(|(n, _, at)| {
            let post = posts
                .iter()
                .find(|c| c.params["channel"] == channel(*n).as_str() && c.params["thread_ts"] == thread(*n).as_str())
                .expect("the card's post");
            post.at.saturating_sub(*at)
        })
        .collect();
    latency.sort_unstable();
    eprintln!(
        "budget: {STREAMS} streams in {CHANNELS} channels posted by replicas {posters:?}; ack → card p50 {:?}, \
         p99 {:?}, max {:?}; {} posts, {} × 429",
        percentile(&latency, 50),
        percentile(&latency, 99),
        latency.last().copied().unwrap_or_default(),
        posts.len(),
        slack.count_429()
    );
    assert!(posters.len() >= 2, "the streams were spread over the replicas, not driven by one: {posters:?}");
    assert_eq!(slack.count_429(), 0, "the replicas together stayed within Slack's rate limits");
    assert!(slack.rejections().is_empty(), "{:?}", slack.rejections());
}
