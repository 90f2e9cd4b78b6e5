//! The shared outbound budget: takers queue by reservation in arrival order, never beyond the bucket's rate, and
//! a 429 block is waited out, not reserved through.

use std::time::Duration;

use cynode_orchestrator::stream::{BucketSpec, OutboundBudget, Take};
use cynode_tests::TestDb;
use uuid::Uuid;

async fn install(db: &TestDb) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO installs (id, platform, external_id, name) VALUES ($1, 'slack', 'T0BUDGET', 'b')")
        .bind(id)
        .execute(&db.pool)
        .await
        .expect("install");
    id
}

fn reserved(t: Take) -> Duration {
    match t {
        Take::Reserved(d) => d,
        other => panic!("expected a reservation, got {other:?}"),
    }
}

#[tokio::test]
async fn takers_reserve_their_turn_in_order_up_to_the_longest_wait_allowed() {
    let db = TestDb::new().await;
    let install = install(&db).await;
    let budget = OutboundBudget::new(db.pool.clone());
    // 2 a second, no burst: turns every 500 ms.
    let spec = [BucketSpec { key: "global".into(), per_second: 2.0, burst: 1.0 }];
    let most = Duration::from_millis(1_200);
    assert_eq!(budget.take(install, &spec, most).await.expect("take"), Take::Now);
    let second = reserved(budget.take(install, &spec, most).await.expect("take"));
    let third = reserved(budget.take(install, &spec, most).await.expect("take"));
    assert!(second > Duration::from_millis(400) && second <= Duration::from_millis(500), "{second:?}");
    assert!(third > second + Duration::from_millis(400), "queued behind the second: {third:?} after {second:?}");
    // The fourth would wait about 1.5 s: longer than it may, so nothing is taken and it comes back later.
    match budget.take(install, &spec, most).await.expect("take") {
        Take::Later(d) => assert!(d > Duration::ZERO && d <= Duration::from_millis(500), "{d:?}"),
        other => panic!("expected to come back later, got {other:?}"),
    }
    let again = reserved(budget.take(install, &spec, Duration::from_secs(5)).await.expect("take"));
    assert!(again > third, "the refused taker took nothing: the next turn is still after the third");
}

#[tokio::test]
async fn a_blocked_bucket_is_waited_out_not_reserved_through() {
    let db = TestDb::new().await;
    let install = install(&db).await;
    let budget = OutboundBudget::new(db.pool.clone());
    let spec = [BucketSpec { key: "update".into(), per_second: 10.0, burst: 5.0 }];
    assert_eq!(budget.take(install, &spec, Duration::from_secs(2)).await.expect("take"), Take::Now);
    budget.block(install, &spec, Duration::from_secs(3)).await.expect("block");
    match budget.take(install, &spec, Duration::from_secs(10)).await.expect("take") {
        Take::Later(d) => assert!(d > Duration::from_secs(2), "the Retry-After is honoured: {d:?}"),
        other => panic!("expected to wait out the block, got {other:?}"),
    }
}

#[tokio::test]
async fn a_request_may_go_as_soon_as_a_block_ends() {
    let db = TestDb::new().await;
    let install = install(&db).await;
    let budget = OutboundBudget::new(db.pool.clone());
    // One request a second: after a block, waiting a further second for a token would double every wait.
    let spec = [BucketSpec { key: "route".into(), per_second: 1.0, burst: 1.0 }];
    assert_eq!(budget.take(install, &spec, Duration::ZERO).await.expect("take"), Take::Now);
    budget.block(install, &spec, Duration::from_millis(300)).await.expect("block");
    assert!(matches!(budget.take(install, &spec, Duration::ZERO).await.expect("take"), Take::Later(_)));
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(budget.take(install, &spec, Duration::ZERO).await.expect("take"), Take::Now, "due when the block ends");
    match budget.take(install, &spec, Duration::ZERO).await.expect("take") {
        Take::Later(d) => assert!(d > Duration::from_millis(900), "then the bucket's own rate: {d:?}"),
        other => panic!("one request after the block, got {other:?}"),
    }
}
