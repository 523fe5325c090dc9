#![allow(missing_docs)] // criterion_group! generates undocumented items.
//! The access path, in process.
//!
//! - `decide_and_unseal_5_fields`: the policy decision plus opening five AES-256-GCM fields, the
//!   pure CPU cost of a read.
//! - `baseline_static/c64` and `candor_access/c64`: 64 concurrent `POST /v1/access` calls through
//!   the router, against an axum endpoint that returns the same bytes with no decision, no crypto
//!   and no log, and against Candor's full path with its durable, group-committed log on SQLite.
//!   The ratio of the two is the figure to report; both run in the same process and run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use axum::routing::post;
use candor_core::{DataMap, SAMPLE_DATA_MAP, decide};
use candor_crypto::{DataKey, RootKey, SealContext};
use candor_log::NoteSigner;
use candor_store::{Db, SqliteStore};
use candor_vault::{NewKeySpec, Vault};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tower::ServiceExt;

const OPS: &str = "essential.service.operations";
const FIELDS: [&str; 5] = [
    "user.name",
    "user.contact.email",
    "user.contact.address",
    "user.contact.phone_number",
    "user.behavior.purchase_history",
];
const VALUES: [&str; 5] = [
    "Augusta Ada King",
    "ada@example.org",
    "12 Analytical Row, London",
    "+44 20 7946 0000",
    "2026-11-01 tea set; 2026-11-09 brass gears",
];
const CONCURRENCY: u64 = 64;
const SUBJECTS: usize = 512;

struct Fixture {
    _dir: tempfile::TempDir,
    vault: Arc<Vault>,
    token: String,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn fixture(rt: &tokio::runtime::Runtime) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Db::Sqlite(Arc::new(
        SqliteStore::open(&dir.path().join("bench.db"), &candor_vault::schema()).unwrap(),
    ));
    let map = DataMap::parse(SAMPLE_DATA_MAP).unwrap();
    let signer = NoteSigner::generate("bench.candor.example/log").unwrap();
    let claim = candor_vault::SequencerClaim {
        holder: "bench".into(),
        ttl: std::time::Duration::from_secs(10),
    };
    let root = RootKey::generate();
    let keyring = candor_vault::Keyring::in_memory(&root);
    let vault = Arc::new(Vault::open(store, map, &root, keyring, signer, &claim).unwrap());
    let token = rt.block_on(async {
        let admin = vault.keys().create_admin_key(now()).await.unwrap();
        let admin = vault.keys().authenticate(&admin.token, now()).unwrap();
        let spec = NewKeySpec {
            name: "bench".into(),
            purposes: vec![OPS.into()],
            recipient: None,
            can_mint_sessions: false,
            can_erase: false,
            expires_at: None,
            sessions: Default::default(),
        };
        let token = vault
            .keys()
            .create_key(&admin, spec, now())
            .await
            .unwrap()
            .token
            .to_string();
        let service = vault.keys().authenticate(&token, now()).unwrap();
        // Seed concurrently so group commit makes this quick.
        let mut seeding = Vec::new();
        for i in 0..SUBJECTS {
            let (vault, service) = (vault.clone(), service.clone());
            seeding.push(tokio::spawn(async move {
                let subject = candor_core::SubjectId::parse(&format!("cus_{i}")).unwrap();
                let fields = FIELDS
                    .iter()
                    .zip(VALUES)
                    .map(|(f, v)| (f.to_string(), zeroize::Zeroizing::new(v.to_string())))
                    .collect();
                vault
                    .collection()
                    .collect(&service, &subject, OPS, fields, now())
                    .await
                    .unwrap();
            }));
        }
        for s in seeding {
            s.await.unwrap();
        }
        token
    });
    Fixture {
        _dir: dir,
        vault,
        token,
    }
}

fn access_request(token: &str, i: u64) -> Request<Body> {
    let body = serde_json::json!({
        "subject": format!("cus_{}", i % SUBJECTS as u64),
        "purpose": OPS,
        "fields": FIELDS,
    });
    Request::post("/v1/access")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// Runs `iters` requests through `router`, `CONCURRENCY` at a time, and returns the wall time.
fn concurrent(rt: &tokio::runtime::Runtime, router: &Router, token: &str, iters: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for worker in 0..CONCURRENCY {
            let router = router.clone();
            let token = token.to_owned();
            tasks.push(tokio::spawn(async move {
                let mut i = worker;
                while i < iters {
                    let resp = router
                        .clone()
                        .oneshot(access_request(&token, i))
                        .await
                        .unwrap();
                    let status = resp.status();
                    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                        .await
                        .unwrap();
                    assert!(status.is_success(), "{status}: {body:?}");
                    i += CONCURRENCY;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        start.elapsed()
    })
}

fn bench(c: &mut Criterion) {
    // Errors only: an internal error's cause is logged, never sent to the client.
    tracing_subscriber::fmt()
        .with_env_filter("error")
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fx = fixture(&rt);

    // The exact bytes Candor answers, for the baseline to return.
    let candor = candor_http::app(fx.vault.clone());
    let canned = rt.block_on(async {
        let resp = candor
            .clone()
            .oneshot(access_request(&fx.token, 0))
            .await
            .unwrap();
        axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
    });
    let baseline = Router::new().route(
        "/v1/access",
        post(move || {
            let canned = canned.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], canned) }
        }),
    );

    let mut group = c.benchmark_group("access");
    group.throughput(Throughput::Elements(1));

    let map = DataMap::parse(SAMPLE_DATA_MAP).unwrap();
    let purpose = map.purpose(OPS).unwrap().clone();
    let key = DataKey::generate();
    let sealed: Vec<Vec<u8>> = FIELDS
        .iter()
        .zip(VALUES)
        .map(|(f, v)| key.seal("cus_1", SealContext::Field(f), v.as_bytes()))
        .collect();
    let wanted: Vec<String> = FIELDS.iter().map(|f| f.to_string()).collect();
    let subject = candor_core::SubjectId::parse("cus_1").unwrap();
    group.bench_function("decide_and_unseal_5_fields", |b| {
        b.iter(|| {
            let d = decide(&map, &purpose, &subject, None, &[], &wanted, 1_800_000_000);
            for (field, blob) in d.permit.fields().iter().zip(&sealed) {
                std::hint::black_box(key.open("cus_1", SealContext::Field(field), blob).unwrap());
            }
        })
    });

    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("baseline_static/c64", |b| {
        b.iter_custom(|iters| concurrent(&rt, &baseline, &fx.token, iters))
    });
    group.bench_function("candor_access/c64", |b| {
        b.iter_custom(|iters| concurrent(&rt, &candor, &fx.token, iters))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
