//! Scenarios 2, 4 and 9: a replica dies (SIGKILL), freezes (SIGSTOP, resumed later) or is cut off from PostgreSQL
//! (a partition: its connections stay open and silent, then come back) while it drives streams, at the moment its
//! `chat.postMessage` is in flight: the message exists at Slack, the answer never reaches the replica
//! (the fake answers posts late, so the window is hit every time). The other replicas take the streams over and
//! continue them in the same messages: no duplicate post, no lost line, the final status shown in the message that
//! was in flight. A frozen or partitioned replica that comes back sends nothing stale: its claims were taken over,
//! and its writes are refused (fencing).

use std::collections::HashMap;
use std::time::Duration;

use cynode_tests::fakes::FakeSlack;
use cynode_tests::fakes::slack::{InFlight, Message};
use cynode_tests::tcp_proxy::Link;

use crate::support::{Deployment, eventually, mention};

/// Streams (long jobs) at once.
const STREAMS: usize = 20;
/// Output lines per job.
const LINES: usize = 24;
/// How late the fake answers posts: the window in which a crash loses the answer.
const LATE: Duration = Duration::from_millis(2_500);
/// The claim lifetime the replicas run with: the documented takeover time (a stream is continued this long after
/// its replica's last step).
const CLAIM_TTL_MS: &str = "3000";

fn channel(n: usize) -> String {
    format!("CTAKE{n:02}")
}

fn thread(n: usize) -> String {
    format!("17002000{n:02}.000100")
}

fn describe(slack: &FakeSlack, n: usize) -> String {
    slack.messages_in(&channel(n), Some(&thread(n))).iter().map(Message::shown).collect::<Vec<_>>().join("\n---\n")
}

/// What happens to the replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Blow {
    /// SIGKILL.
    Kill,
    /// SIGSTOP, then SIGCONT once its streams were taken over.
    Freeze,
    /// Its PostgreSQL link goes silent, then comes back once its streams were taken over.
    Partition,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_with_a_post_in_flight_leaves_its_streams_to_the_others_in_the_same_messages() {
    takeover(Blow::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_frozen_with_a_post_in_flight_sends_nothing_stale_when_it_wakes_up() {
    takeover(Blow::Freeze).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_from_the_database_leaves_its_streams_and_writes_nothing_when_it_returns() {
    takeover(Blow::Partition).await;
}

async fn takeover(blow: Blow) {
    let _serial = crate::support::serial().await;
    let slack = FakeSlack::builder().answer_posts_late(LATE).start().await;
    let env = [("CYNODE__STREAM__CLAIM_TTL_MS", CLAIM_TTL_MS), ("CYNODE__DISPATCH__LEASE_TTL_MS", "30000")];
    let mut d = Deployment::start(slack, "", &env, true).await;
    let command = format!("run for i in $(seq 1 {LINES}); do echo line-$i; sleep 0.4; done");
    for n in 0..STREAMS {
        let body = mention(&format!("EvTAKE{n:03}"), &channel(n), &thread(n), &command);
        assert_eq!(d.deliver_as_slack(&d.cluster.lb_url(), &body).await, 200, "{}", d.cluster.all_output());
    }
    let ours = |f: &InFlight| (0..STREAMS).any(|n| f.channel == channel(n));

    // The first post of ours in flight names the victim; every post of the victim in flight then is interrupted.
    let (victim, interrupted) = eventually(
        Duration::from_secs(60),
        "a post in flight",
        || async {
            let flights: Vec<InFlight> = d.slack.in_flight().into_iter().filter(ours).collect();
            let victim = flights.iter().find_map(|f| d.cluster.replica_of_peer(f.peer))?;
            let mine = flights.into_iter().filter(|f| d.cluster.replica_of_peer(f.peer) == Some(victim)).collect();
            Some((victim, mine))
        },
        || d.cluster.all_output(),
    )
    .await;
    let interrupted: Vec<InFlight> = interrupted;
    let at = d.slack.started().elapsed();
    match blow {
        Blow::Kill => d.cluster.kill(victim).await,
        Blow::Freeze => d.cluster.pause(victim),
        Blow::Partition => d.cluster.db_link(victim, Link::Partitioned),
    }

    // Takeover: the first call on each interrupted thread after the interruption (from another replica).
    let slack = &d.slack;
    let takeovers: Vec<Duration> = eventually(
        Duration::from_secs(60),
        "every interrupted stream taken over",
        || async {
            let calls = slack.calls();
            interrupted
                .iter()
                .map(|f| {
                    calls
                        .iter()
                        .find(|c| c.at > at && c.params["channel"] == f.channel.as_str())
                        .map(|c| c.at.saturating_sub(at))
                })
                .collect::<Option<Vec<_>>>()
        },
        || d.cluster.all_output(),
    )
    .await;
    // Back after its streams were taken over: its held answers arrive now, and it must send nothing more.
    tokio::time::sleep(Duration::from_secs(1)).await;
    match blow {
        Blow::Kill => {}
        Blow::Freeze => d.cluster.resume(victim),
        Blow::Partition => d.cluster.db_link(victim, Link::Up),
    }

    // Every stream ends with the final status and all its output, each line once.
    for n in 0..STREAMS {
        eventually(
            Duration::from_secs(150),
            &format!("stream {n} finished"),
            || async {
                let all = describe(slack, n);
                (all.contains("✅ Succeeded") && all.contains(&format!("line-{LINES}\n")) && !all.contains('⏳'))
                    .then_some(())
            },
            || format!("{}\n{}", describe(slack, n), d.cluster.all_output()),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for n in 0..STREAMS {
        let all = describe(slack, n);
        assert!(!all.contains('⏳'), "no stale status left in thread {n}:\n{all}");
        assert_eq!(all.matches("✅ Succeeded").count(), 1, "one final status in thread {n}:\n{all}");
        for i in 1..=LINES {
            assert_eq!(all.matches(&format!("line-{i}\n")).count(), 1, "line-{i} once in thread {n}:\n{all}");
        }
    }
    // The messages that were in flight are the ones continued: they were edited afterwards.
    for f in &interrupted {
        let m = slack.message(&f.channel, &f.ts).expect("the interrupted message exists");
        assert!(m.edits > 0, "the interrupted message was continued, not abandoned: {m:#?}");
    }
    // No duplicate post: every post marked with a stream's (task, index) exists once.
    let mut marked: HashMap<String, usize> = HashMap::new();
    for n in 0..STREAMS {
        for m in slack.messages_in(&channel(n), Some(&thread(n))) {
            if let Some(meta) = m.metadata {
                *marked.entry(meta["event_payload"].to_string()).or_default() += 1;
            }
        }
    }
    assert!(marked.values().all(|c| *c == 1), "a post repeated: {marked:?}");
    // The records agree: every stream closed, no message recorded as lost.
    let (open, lost): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE state <> 'closed'),
                count(*) FILTER (WHERE message_ids::text LIKE '%\"lost\"%') FROM stream_records",
    )
    .fetch_one(&d.cluster.db.pool)
    .await
    .expect("records");
    assert_eq!((open, lost), (0, 0), "(streams still open, streams with a lost message)");
    if blow != Blow::Kill {
        let woke = d.cluster.output(victim);
        assert!(
            woke.contains("the stream was taken over by another replica; this one stops"),
            "the woken replica noticed its claims were gone:\n{woke}"
        );
    }
    let worst = takeovers.iter().max().copied().unwrap_or_default();
    eprintln!(
        "takeover of {} interrupted streams: worst {worst:?} after the {} (claim_ttl {CLAIM_TTL_MS} ms)",
        interrupted.len(),
        format!("{blow:?}").to_lowercase()
    );
    assert_eq!(slack.count_429(), 0, "no call ran into Slack's rate limits");
    assert!(slack.rejections().is_empty(), "{:?}", slack.rejections());
}
