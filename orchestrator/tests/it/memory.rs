//! Memory against a real PostgreSQL with pgvector: scope isolation (table-driven over installs, channels,
//! threads, users and roles, through every read path), provenance through recall, forget and retention,
//! the embedder down and back, and re-embedding after a model change. The embedder is a fake
//! OpenAI-compatible server (`fake_embedder`); the real model is used by the end-to-end test.

mod fake_embedder;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use cynode_orchestrator::crypto::SecretBox;
use cynode_orchestrator::memory::{
    Embedder, EmbedderConfig, Forget, HttpEmbedder, Memories, MemoryError, MemorySettings, NewMemory, Provenance,
    ProviderChoice, ProviderEmbedder, Recall, Scope, Viewer,
};
use cynode_orchestrator::outbound_guard::OutboundGuard;
use cynode_orchestrator::providers::{self, ProviderSpec};
use cynode_orchestrator::tasks::Origin;
use cynode_tests::TestDb;
use fake_embedder::FakeEmbedder;
use secrecy::SecretString;
use uuid::Uuid;

struct Env {
    db: TestDb,
    a: Uuid,
    b: Uuid,
    /// (install, channel, thread) → conversation
    convs: Vec<((Uuid, &'static str, &'static str), Uuid)>,
}

async fn env() -> Env {
    let db = TestDb::new().await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    for (id, ext) in [(a, "TA"), (b, "TB")] {
        sqlx::query("INSERT INTO installs (id, platform, external_id, name) VALUES ($1, 'slack', $2, $2)")
            .bind(id)
            .bind(ext)
            .execute(&db.pool)
            .await
            .expect("install");
    }
    // Install B uses the very same channel and thread ids as A: only the install tells them apart.
    let mut convs = Vec::new();
    for (install, channel, thread) in [(a, "C1", "t1"), (a, "C1", "t2"), (a, "C2", "t1"), (b, "C1", "t1")] {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO conversations (id, install_id, channel, thread, thread_ref) VALUES ($1, $2, $3, $4, '{}')",
        )
        .bind(id)
        .bind(install)
        .bind(channel)
        .bind(thread)
        .execute(&db.pool)
        .await
        .expect("conversation");
        convs.push(((install, channel, thread), id));
    }
    // UBOSS approves for install A only.
    sqlx::query("INSERT INTO policy_rules (id, install_id, position, rule) VALUES ($1, $2, 0, $3)")
        .bind(Uuid::now_v7())
        .bind(a)
        .bind(serde_json::json!({ "when": { "gpu": true }, "approvers": ["UBOSS"] }))
        .execute(&db.pool)
        .await
        .expect("rule");
    Env { db, a, b, convs }
}

impl Env {
    async fn viewer(&self, install: Uuid, place: Option<(&str, &str)>, user: &str) -> Viewer {
        let conversation_id = place.map(|(c, t)| {
            self.convs.iter().find(|((i, ch, th), _)| *i == install && *ch == c && *th == t).expect("conv").1
        });
        let origin = Origin {
            install_id: Some(install),
            conversation_id,
            requester: user.into(),
            source: "chat".into(),
            ..Origin::default()
        };
        Viewer::of(&self.db.pool, &origin).await.expect("viewer")
    }
}

fn embedder(fake: &FakeEmbedder, model: &str) -> Arc<dyn Embedder> {
    let config = EmbedderConfig {
        base_url: fake.url.parse().expect("url"),
        api_key: Some(SecretString::from("sk-test-key")),
        model: model.into(),
        input_type: true,
        timeout: Duration::from_secs(2),
    };
    Arc::new(
        HttpEmbedder::new(config, OutboundGuard::allowing(vec!["127.0.0.0/8".parse().expect("cidr")]))
            .expect("embedder"),
    )
}

fn settings() -> MemorySettings {
    MemorySettings { inline_embed_timeout: Duration::from_secs(2), ..MemorySettings::default() }
}

fn texts(list: &[cynode_orchestrator::memory::Memory]) -> BTreeSet<String> {
    list.iter().map(|m| m.text.clone()).collect()
}

/// Every viewer sees exactly the memories its install, channel, thread and identity allow — through `list`,
/// `get`, keyword recall and hybrid recall — and nothing of install B, whose channel and thread ids are A's.
#[tokio::test]
async fn scope_isolation_across_installs_channels_threads_users_and_roles() {
    let env = env().await;
    let fake = FakeEmbedder::start(Some("sk-test-key"), 384).await;
    let mem = Memories::new(env.db.pool.clone(), Some(embedder(&fake, "fake-384")), settings());
    let keyword_only = Memories::new(env.db.pool.clone(), None, settings());
    let (a, b) = (env.a, env.b);

    let u1 = env.viewer(a, Some(("C1", "t1")), "U1").await;
    let boss = env.viewer(a, Some(("C1", "t1")), "UBOSS").await;
    assert!(boss.approver && !u1.approver);
    let deployment_admin = Viewer { install_id: None, user: "admin-token".into(), approver: true, ..Viewer::default() };
    let b_u1 = env.viewer(b, Some(("C1", "t1")), "U1").await;
    let write = [
        (&boss, "zebra install fact", Scope::Install, Provenance::User),
        (&u1, "zebra channel fact", Scope::Channel, Provenance::User),
        (&u1, "zebra thread fact", Scope::Thread, Provenance::User),
        (&u1, "zebra private fact", Scope::User, Provenance::User),
        (&deployment_admin, "zebra shared fact", Scope::Shared, Provenance::Admin),
        (&b_u1, "zebra other install fact", Scope::Channel, Provenance::User),
        (&b_u1, "zebra other install private fact", Scope::User, Provenance::User),
    ];
    let mut ids = Vec::new();
    for (who, text, scope, prov) in write {
        ids.push((text, mem.add(who, NewMemory::new(text, scope, prov)).await.expect(text).id));
    }

    let all_a = ["zebra install fact", "zebra channel fact", "zebra thread fact", "zebra private fact"];
    let table: Vec<(&str, Viewer, Vec<&str>)> = vec![
        ("A C1 t1 U1 (the writer)", u1.clone(), [&all_a[..], &["zebra shared fact"]].concat()),
        (
            "A C1 t2 U1 (other thread)",
            env.viewer(a, Some(("C1", "t2")), "U1").await,
            vec!["zebra install fact", "zebra channel fact", "zebra private fact", "zebra shared fact"],
        ),
        (
            "A C1 t1 U2 (other user)",
            env.viewer(a, Some(("C1", "t1")), "U2").await,
            vec!["zebra install fact", "zebra channel fact", "zebra thread fact", "zebra shared fact"],
        ),
        (
            "A C1 t1 UBOSS (an approver sees no one's private memory either)",
            boss.clone(),
            vec!["zebra install fact", "zebra channel fact", "zebra thread fact", "zebra shared fact"],
        ),
        (
            "A C2 t1 U1 (other channel, same thread id)",
            env.viewer(a, Some(("C2", "t1")), "U1").await,
            vec!["zebra install fact", "zebra private fact", "zebra shared fact"],
        ),
        (
            "A API U1 (no channel)",
            env.viewer(a, None, "U1").await,
            vec!["zebra install fact", "zebra private fact", "zebra shared fact"],
        ),
        (
            "B C1 t1 U1 (same ids, other install)",
            b_u1.clone(),
            vec!["zebra other install fact", "zebra other install private fact", "zebra shared fact"],
        ),
        (
            "B C1 t1 U2",
            env.viewer(b, Some(("C1", "t1")), "U2").await,
            vec!["zebra other install fact", "zebra shared fact"],
        ),
    ];
    for (name, viewer, expected) in &table {
        let expected: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(texts(&mem.list(viewer, 200).await.expect("list")), expected, "list: {name}");
        let r = Recall { query: "zebra fact".into(), limit: 50 };
        for (how, m) in [("hybrid", &mem), ("keyword", &keyword_only)] {
            let got = m.recall(viewer, &r).await.expect("recall");
            assert_eq!(got.hybrid, how == "hybrid", "{how}: {name}");
            let got: BTreeSet<String> = got.memories.iter().map(|(m, _)| m.text.clone()).collect();
            assert_eq!(got, expected, "{how} recall: {name}");
        }
        for (text, id) in &ids {
            match mem.get(viewer, *id).await {
                Ok(m) => assert!(expected.contains(*text) && m.text == *text, "get {text}: {name}"),
                Err(MemoryError::NotFound(_)) => assert!(!expected.contains(*text), "get {text}: {name}"),
                Err(e) => panic!("get {text}: {name}: {e}"),
            }
        }
    }
    // Every memory was embedded at once (the embedder was up).
    let unembedded: i64 = sqlx::query_scalar("SELECT count(*) FROM memories WHERE embedding IS NULL")
        .fetch_one(&env.db.pool)
        .await
        .expect("n");
    assert_eq!(unembedded, 0);
}

#[tokio::test]
async fn writes_are_checked_and_install_wide_memory_from_a_non_approver_waits_for_one() {
    let env = env().await;
    let mem = Memories::new(env.db.pool.clone(), None, settings());
    let u1 = env.viewer(env.a, Some(("C1", "t1")), "U1").await;
    let api = env.viewer(env.a, None, "U1").await;
    let err = |r: Result<_, MemoryError>| {
        r.map(|_: cynode_orchestrator::memory::Memory| ()).expect_err("refused").to_string()
    };
    assert!(err(mem.add(&u1, NewMemory::new("   ", Scope::Channel, Provenance::User)).await).contains("empty"));
    let long = "x".repeat(2_001);
    let m = err(mem.add(&u1, NewMemory::new(long, Scope::Channel, Provenance::User)).await);
    assert!(m.contains("2001 characters") && m.contains("at most 2000"), "{m}");
    let m = err(mem.add(&u1, NewMemory::new("global fact", Scope::Shared, Provenance::User)).await);
    assert!(m.contains("deployment admin"), "{m}");
    let m = err(mem.add(&api, NewMemory::new("channel fact", Scope::Channel, Provenance::User)).await);
    assert!(m.contains("from that channel"), "{m}");
    assert!(
        Scope::parse("galaxy").expect_err("unknown").contains("scopes are shared, install, channel, thread and user")
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM memories").fetch_one(&env.db.pool).await.expect("n");
    assert_eq!(n, 0, "nothing refused was stored");
    let boss = env.viewer(env.a, Some(("C1", "t1")), "UBOSS").await;
    mem.add(&boss, NewMemory::new("team fact", Scope::Install, Provenance::User)).await.expect("approver writes");
    cynode_orchestrator::audit::flush(&env.db.pool).await.expect("link the audit entries");
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'memory.add' AND actor = 'UBOSS'")
            .fetch_one(&env.db.pool)
            .await
            .expect("audit");
    assert_eq!(audited, 1);

    // A non-approver's install-wide memory is a proposal: stored, seen by no recall, list or get, not even its
    // author's, until an approver approves it.
    let u2 = env.viewer(env.a, Some(("C2", "t1")), "U2").await;
    let p = mem.add(&u1, NewMemory::new("The staging database moves to pg-2", Scope::Install, Provenance::User)).await;
    let p = p.expect("proposed");
    assert!(p.awaiting_approval);
    let recalls = |v: &Viewer| {
        let (mem, v) = (mem.clone(), v.clone());
        async move {
            let r = mem.recall(&v, &Recall { query: "staging database".into(), limit: 5 }).await.expect("recall");
            r.memories.iter().any(|(m, _)| m.id == p.id)
        }
    };
    for v in [&u1, &u2, &boss] {
        assert!(!recalls(v).await, "a proposal is recalled by no one");
        assert!(!mem.list(v, 50).await.expect("list").iter().any(|m| m.id == p.id));
        assert!(matches!(mem.get(v, p.id).await, Err(MemoryError::NotFound(_))));
    }
    // Who sees the proposals: the approver all of them, the author theirs, others none, install B nothing.
    let ids = |l: Vec<cynode_orchestrator::memory::Memory>| l.into_iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(ids(mem.proposals(&boss, 50).await.expect("boss")), vec![p.id]);
    assert_eq!(ids(mem.proposals(&u1, 50).await.expect("author")), vec![p.id]);
    assert!(mem.proposals(&u2, 50).await.expect("other").is_empty());
    let outsider = env.viewer(env.b, Some(("C1", "t1")), "UBOSS").await;
    assert!(mem.proposals(&outsider, 50).await.expect("b").is_empty());
    let short = &p.id.to_string()[..8];
    assert_eq!(mem.resolve_proposal(&boss, short).await.expect("prefix"), p.id);
    assert_eq!(mem.resolve_proposal(&u2, short).await.expect("same install"), p.id);
    assert!(matches!(mem.resolve_proposal(&outsider, short).await, Err(MemoryError::NotFound(_))));

    // Deciding: a non-approver may not; another install answers 404; the author may not approve their own.
    let refused = |r: Result<Option<cynode_orchestrator::memory::Memory>, MemoryError>| match r {
        Err(MemoryError::Forbidden(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(refused(mem.review(&u2, p.id, true).await).contains("only an approver"));
    assert!(refused(mem.review(&u2, p.id, false).await).contains("only an approver"));
    assert!(refused(mem.review(&u1, p.id, true).await).contains("another approver"));
    assert!(matches!(mem.review(&outsider, p.id, true).await, Err(MemoryError::NotFound(_))));
    let approved = mem.review(&boss, p.id, true).await.expect("approve").expect("kept");
    assert!(!approved.awaiting_approval && approved.expires_at.is_none());
    for v in [&u1, &u2, &boss] {
        assert!(recalls(v).await, "recalled by everyone in the install once approved");
    }
    assert!(!recalls(&outsider).await);
    assert!(matches!(mem.review(&boss, p.id, true).await, Err(MemoryError::NotFound(_))), "decided once");

    // Denied: deleted. Withdrawn by its author: deleted.
    for (decider, action) in [(&boss, "memory.denied"), (&u1, "memory.withdrawn")] {
        let q = mem.add(&u1, NewMemory::new("Lunch is at noon", Scope::Install, Provenance::User)).await;
        let q = q.expect("proposed");
        assert_eq!(mem.review(decider, q.id, false).await.expect("deny"), None);
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM memories WHERE id = $1")
            .bind(q.id)
            .fetch_one(&env.db.pool)
            .await
            .expect("n");
        assert_eq!(left, 0, "{action}");
        assert_eq!(crate::support::audited(&env.db.pool, action).await.len(), 1, "{action} audited");
    }
    for action in ["memory.proposed", "memory.approved", "memory.review.refused"] {
        assert!(!crate::support::audited(&env.db.pool, action).await.is_empty(), "{action} audited");
    }

    // Without an install (a global token, `cynode up`'s console): an approver writes install scope as before; anyone
    // else is refused, since no approver could decide a proposal of no install.
    let global_admin = Viewer { install_id: None, user: "root".into(), approver: true, ..Viewer::default() };
    let m = mem.add(&global_admin, NewMemory::new("Deploys freeze on the 24th", Scope::Install, Provenance::Admin));
    assert!(!m.await.expect("a global admin writes it").awaiting_approval);
    let global = Viewer { approver: false, ..global_admin };
    let r = mem.add(&global, NewMemory::new("x", Scope::Install, Provenance::User)).await;
    assert!(matches!(r, Err(MemoryError::Forbidden(ref m)) if m.contains("needs an approver")), "{r:?}");
}

#[tokio::test]
async fn forget_by_id_source_and_user_with_ownership_and_cross_install_404() {
    let env = env().await;
    let mem = Memories::new(env.db.pool.clone(), None, settings());
    let u1 = env.viewer(env.a, Some(("C1", "t1")), "U1").await;
    let u2 = env.viewer(env.a, Some(("C1", "t1")), "U2").await;
    let boss = env.viewer(env.a, Some(("C1", "t1")), "UBOSS").await;
    let b_u1 = env.viewer(env.b, Some(("C1", "t1")), "U1").await;
    let add = |v: &Viewer, t: &str| {
        let (mem, v, t) = (mem.clone(), v.clone(), t.to_owned());
        async move { mem.add(&v, NewMemory::new(t, Scope::Channel, Provenance::User)).await.expect("add").id }
    };
    let one = add(&u1, "first").await;
    let two = add(&u1, "second").await;
    let three = add(&u1, "third").await;
    let theirs = add(&u2, "u2's").await;

    // Someone else's memory: refused (and the refusal audited); another install's id: not found, as if absent.
    match mem.forget(&u2, &Forget::Id(one)).await {
        Err(MemoryError::Forbidden(m)) => assert!(m.contains("written by U1"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(mem.forget(&b_u1, &Forget::Id(one)).await, Err(MemoryError::NotFound(_))));
    assert!(matches!(mem.get(&b_u1, one).await, Err(MemoryError::NotFound(_))));
    assert_eq!(mem.forget(&u1, &Forget::Id(one)).await.expect("own"), 1);
    assert_eq!(mem.forget(&boss, &Forget::Id(two)).await.expect("approver"), 1);
    // By user: only oneself, unless an approver.
    assert!(matches!(mem.forget(&u2, &Forget::User("U1".into())).await, Err(MemoryError::Forbidden(_))));
    assert_eq!(mem.forget(&u1, &Forget::User("U1".into())).await.expect("self"), 1);
    assert!(matches!(mem.get(&u1, three).await, Err(MemoryError::NotFound(_))));
    // By source (the conversation): U2's memory from this thread, by an approver.
    let conv = u2.conversation_id.expect("conv");
    assert_eq!(mem.forget(&b_u1, &Forget::Conversation(conv)).await.expect("other install"), 0);
    assert_eq!(mem.forget(&boss, &Forget::Conversation(conv)).await.expect("approver"), 1);
    assert!(matches!(mem.get(&u2, theirs).await, Err(MemoryError::NotFound(_))));
    cynode_orchestrator::audit::flush(&env.db.pool).await.expect("link the audit entries");
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log WHERE action LIKE 'memory.forget%' ORDER BY seq")
            .fetch_all(&env.db.pool)
            .await
            .expect("audit");
    assert_eq!(actions.iter().filter(|a| *a == "memory.forget.refused").count(), 1, "{actions:?}");
    assert!(actions.iter().filter(|a| *a == "memory.forget").count() >= 4, "{actions:?}");
}

#[tokio::test]
async fn retention_hides_and_purges_expired_memories() {
    let env = env().await;
    let s = MemorySettings { retention: vec![(Scope::Thread, Duration::from_secs(3600))], ..settings() };
    let mem = Memories::new(env.db.pool.clone(), None, s);
    let u1 = env.viewer(env.a, Some(("C1", "t1")), "U1").await;
    let kept = mem.add(&u1, NewMemory::new("keeps", Scope::Channel, Provenance::User)).await.expect("add");
    let thread = mem.add(&u1, NewMemory::new("thread note", Scope::Thread, Provenance::User)).await.expect("add");
    assert!(kept.expires_at.is_none());
    assert!(thread.expires_at.is_some(), "the thread scope's retention applies");
    let mut short = NewMemory::new("gone soon", Scope::Channel, Provenance::User);
    short.ttl = Some(Duration::from_secs(1));
    mem.add(&u1, short).await.expect("add");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(texts(&mem.list(&u1, 10).await.expect("list")), ["keeps", "thread note"].map(String::from).into());
    assert_eq!(mem.purge_expired().await.expect("purge"), 1);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM memories").fetch_one(&env.db.pool).await.expect("n");
    assert_eq!(n, 2);
}

/// Down: the memory is stored without a vector and recall says it is keyword-only. Back: the worker embeds it and
/// recall is hybrid again — and finds by meaning what shares no keyword with the query.
#[tokio::test]
async fn the_embedder_down_and_back() {
    let env = env().await;
    let fake = FakeEmbedder::start(None, 384).await;
    let mem = Memories::new(env.db.pool.clone(), Some(embedder(&fake, "fake-384")), settings());
    let u1 = env.viewer(env.a, Some(("C1", "t1")), "U1").await;
    fake.set_down(true);
    let m = mem
        .add(&u1, NewMemory::new("The deploy key rotates on Fridays", Scope::Channel, Provenance::User))
        .await
        .expect("add");
    assert!(m.embedding_model.is_none(), "stored without a vector");
    let r = mem.recall(&u1, &Recall { query: "deploy key".into(), limit: 5 }).await.expect("recall");
    assert!(!r.hybrid);
    let notice = r.notice.clone().expect("notice");
    assert!(notice.contains("503") && notice.contains("keyword matches only"), "{notice}");
    assert_eq!(r.memories.len(), 1, "keyword recall still works");
    assert!(mem.pass().await.expect("pass").error.is_some(), "the worker leaves it while the embedder is down");

    fake.set_down(false);
    let pass = mem.pass().await.expect("pass");
    assert_eq!((pass.embedded, pass.error), (1, None));
    let r = mem.recall(&u1, &Recall { query: "deploy".into(), limit: 5 }).await.expect("recall");
    assert!(r.hybrid && r.notice.is_none());
    assert_eq!(r.memories.first().map(|(m, _)| m.id), Some(m.id));
    let model: Option<String> = sqlx::query_scalar("SELECT embedding_model FROM memories WHERE id = $1")
        .bind(m.id)
        .fetch_one(&env.db.pool)
        .await
        .expect("model");
    assert_eq!(model.as_deref(), Some("fake-384"));
}

/// `memory.embedder_provider`: the embedder is a configured model provider, called with its URL and its sealed
/// key; a rotated key or URL takes effect without a restart; a provider that is unknown, does not list the model,
/// or serves one install only is refused with what to change, the memory is stored and embedded once it is fixed,
/// and the key appears in no error.
#[tokio::test]
async fn the_embedder_is_a_provider_by_name() {
    const KEY: &str = "sk-EMBED-PROVIDER-2f9c81";
    let env = env().await;
    let pool = &env.db.pool;
    let fake = FakeEmbedder::start(Some(KEY), 384).await;
    let secrets = SecretBox::from_base64(&SecretBox::generate_key()).expect("key");
    let lan = OutboundGuard::allowing(vec!["127.0.0.0/8".parse().expect("cidr")]);
    let put = |key: &str, models: &[&str], install: Option<&str>| {
        let spec = ProviderSpec {
            name: "embedsrv".into(),
            install: install.map(str::to_owned),
            base_url: fake.url.trim_end_matches("/v1").to_owned(),
            api_key: Some(SecretString::from(key.to_owned())),
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            max_concurrent: 2,
            queue_threshold: 0,
            enabled: true,
        };
        let (secrets, lan) = (secrets.clone(), lan.clone());
        async move {
            let mut tx = pool.begin().await.expect("tx");
            providers::put(&mut tx, &secrets, &lan, "test", &spec).await.expect("put");
            tx.commit().await.expect("commit");
        }
    };
    let embedder_of = |name: &str| {
        let choice = ProviderChoice {
            name: name.into(),
            model: "fake-384".into(),
            input_type: true,
            timeout: Duration::from_secs(2),
        };
        let e = ProviderEmbedder::new(pool.clone(), secrets.clone(), choice, lan.clone()).expect("embedder");
        Arc::new(e.with_recheck(Duration::ZERO)) as Arc<dyn Embedder>
    };
    let u1 = env.viewer(env.a, Some(("C1", "t1")), "U1").await;
    let note = |text: &str| NewMemory::new(text, Scope::Channel, Provenance::User);
    let notice = |r: &cynode_orchestrator::memory::Recalled| r.notice.clone().unwrap_or_default();

    // No such provider yet: stored, keyword recall, and the notice says what is wrong.
    let mem = Memories::new(pool.clone(), Some(embedder_of("embedsrv")), settings());
    let first = mem.add(&u1, note("The deploy key rotates on Fridays")).await.expect("add");
    assert!(first.embedding_model.is_none());
    let r = mem.recall(&u1, &Recall { query: "deploy key".into(), limit: 5 }).await.expect("recall");
    assert!(!r.hybrid && notice(&r).contains("no provider has that name"), "{}", notice(&r));

    // A provider that does not list the model; then one given to a single install.
    put("sk-wrong", &["chat-model"], None).await;
    let r = mem.recall(&u1, &Recall { query: "deploy key".into(), limit: 5 }).await.expect("recall");
    assert!(notice(&r).contains("does not list the embedding model `fake-384`"), "{}", notice(&r));
    put("sk-wrong", &["fake-384"], Some("TA")).await;
    let r = mem.recall(&u1, &Recall { query: "deploy key".into(), limit: 5 }).await.expect("recall");
    assert!(notice(&r).contains("serves one install only"), "{}", notice(&r));

    // For every install, but with a wrong key: the server refuses it, and the key is in no message.
    put("sk-wrong", &["fake-384"], None).await;
    let r = mem.recall(&u1, &Recall { query: "deploy key".into(), limit: 5 }).await.expect("recall");
    assert!(notice(&r).contains("401"), "{}", notice(&r));
    assert!(!notice(&r).contains("sk-wrong") && !notice(&r).contains(KEY));

    // The key rotated with `cynode admin provider add`: used at once, no restart; the worker embeds the backlog.
    put(KEY, &["fake-384"], None).await;
    assert_eq!(mem.pass().await.expect("pass").embedded, 1);
    let r = mem.recall(&u1, &Recall { query: "deploy".into(), limit: 5 }).await.expect("recall");
    assert!(r.hybrid && r.notice.is_none(), "{:?}", r.notice);
    assert_eq!(r.memories.first().map(|(m, _)| m.id), Some(first.id));
    let second = mem.add(&u1, note("Backups run at 03:00 UTC")).await.expect("add");
    assert_eq!(second.embedding_model.as_deref(), Some("fake-384"), "embedded inline through the provider");
}

/// A new model re-embeds everything in the background; vectors of a size the model is not registered with are
/// refused with a clear message and change nothing.
#[tokio::test]
async fn a_model_change_re_embeds_and_a_wrong_dimension_is_refused() {
    let env = env().await;
    let fake = FakeEmbedder::start(None, 384).await;
    let old = Memories::new(env.db.pool.clone(), Some(embedder(&fake, "fake-384")), settings());
    let u1 = env.viewer(env.a, Some(("C1", "t1")), "U1").await;
    for t in ["alpha beta", "gamma delta", "epsilon zeta"] {
        old.add(&u1, NewMemory::new(t, Scope::Channel, Provenance::User)).await.expect("add");
    }
    fake.set_dims(64);
    let new = Memories::new(env.db.pool.clone(), Some(embedder(&fake, "fake-64")), settings());
    let pass = new.pass().await.expect("pass");
    assert_eq!((pass.embedded, pass.error), (3, None));
    let models: Vec<(String, i32)> = sqlx::query_as("SELECT embedding_model, vector_dims(embedding) FROM memories")
        .fetch_all(&env.db.pool)
        .await
        .expect("m");
    assert!(models.iter().all(|(m, d)| m == "fake-64" && *d == 64), "{models:?}");
    let index: Option<String> = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'memories' AND indexdef LIKE '%fake-64%'",
    )
    .fetch_optional(&env.db.pool)
    .await
    .expect("index");
    assert!(index.is_some_and(|i| i.contains("hnsw") && i.contains("vector(64)")), "the new model got its own index");
    // Once nothing of the old model is left, it is unregistered, so idle passes read no table.
    assert_eq!(new.pass().await.expect("pass").embedded, 0);
    let models: Vec<String> = sqlx::query_scalar("SELECT model FROM memory_models ORDER BY model")
        .fetch_all(&env.db.pool)
        .await
        .expect("models");
    assert_eq!(models, ["fake-64"], "models without memories are unregistered (re-registered if configured again)");
    let r = new.recall(&u1, &Recall { query: "gamma".into(), limit: 1 }).await.expect("recall");
    assert!(r.hybrid);
    assert_eq!(r.memories[0].0.text, "gamma delta");

    // The server now returns 32-d vectors under the name registered with 64.
    fake.set_dims(32);
    let m = new.add(&u1, NewMemory::new("eta theta", Scope::Channel, Provenance::User)).await.expect("stored");
    assert!(m.embedding_model.is_none());
    let pass = new.pass().await.expect("pass");
    let e = pass.error.expect("refused");
    assert!(e.contains("32-dimensional") && e.contains("`fake-64` is registered with 64"), "{e}");
    let r = new.recall(&u1, &Recall { query: "eta".into(), limit: 5 }).await.expect("recall");
    assert!(!r.hybrid && r.notice.expect("notice").contains("registered with 64"));
}

/// Provenance survives the round trip, and only what a person stands behind is trusted.
#[tokio::test]
async fn provenance_is_kept_through_recall() {
    let env = env().await;
    let fake = FakeEmbedder::start(None, 384).await;
    let mem = Memories::new(env.db.pool.clone(), Some(embedder(&fake, "fake-384")), settings());
    let u1 = env.viewer(env.a, Some(("C1", "t1")), "U1").await;
    for p in [Provenance::User, Provenance::Agent, Provenance::Tool] {
        mem.add(&u1, NewMemory::new(format!("kiwi from {}", p.as_str()), Scope::Channel, p)).await.expect("add");
    }
    let r = mem.recall(&u1, &Recall { query: "kiwi".into(), limit: 10 }).await.expect("recall");
    let got: BTreeSet<(String, bool)> =
        r.memories.iter().map(|(m, _)| (m.provenance.as_str().to_owned(), m.trusted)).collect();
    let want: BTreeSet<(String, bool)> =
        [("user", true), ("agent", false), ("tool", false)].map(|(p, t)| (p.to_owned(), t)).into();
    assert_eq!(got, want);
    let data = cynode_orchestrator::memory::recall::for_model(&r);
    assert!(data.contains(r#""provenance":"tool""#) && data.contains(r#""trusted":false"#), "{data}");
}
