//! Whole requests to the real router (head limits, routing, paths, queries, authentication,
//! JSON bodies, the use cases behind them) on a vault in a temporary directory. The input is
//! `METHOD PATH\n` + one byte choosing the caller (none, the admin, a service, a customer's
//! session) + the body. Whatever comes in, the answer is a status below 500 with the documented
//! JSON error body, and the server never panics.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use candor_core::{DataMap, SAMPLE_DATA_MAP, SubjectId};
use candor_crypto::RootKey;
use candor_log::NoteSigner;
use candor_store::{Db, SqliteStore};
use candor_vault::{NewKeySpec, SequencerClaim, Vault};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

struct Harness {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    tokens: [String; 3],
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqliteStore::open(&dir.path().join("c.db"), &candor_vault::schema())
            .expect("the store opens");
        let claim = SequencerClaim {
            holder: "fuzz".into(),
            ttl: std::time::Duration::from_secs(60),
        };
        let root = RootKey::generate();
        let vault = Vault::open(
            Db::Sqlite(Arc::new(store)),
            DataMap::parse(SAMPLE_DATA_MAP).expect("the sample map parses"),
            &root,
            candor_vault::Keyring::in_memory(&root),
            NoteSigner::generate("fuzz.candor.example/log").expect("a log key"),
            &claim,
        )
        .expect("the vault opens");
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let now = 1_800_000_000;
        let tokens = runtime.block_on(async {
            let keys = vault.keys();
            let admin = keys.create_admin_key(now).await.expect("an admin key");
            let as_admin = keys
                .authenticate(&admin.token, now)
                .expect("the admin key works");
            let spec = NewKeySpec {
                name: "checkout".into(),
                purposes: vec!["essential.service.operations".into()],
                recipient: None,
                can_mint_sessions: true,
                can_erase: false,
                sessions: Default::default(),
                expires_at: None,
            };
            let service = keys
                .create_key(&as_admin, spec, now)
                .await
                .expect("a service key");
            let as_service = keys.authenticate(&service.token, now).expect("it works");
            let customer = SubjectId::parse("cus_1").expect("an id");
            vault
                .collection()
                .collect(
                    &as_service,
                    &customer,
                    "essential.service.operations",
                    vec![("user.name".to_owned(), "N".to_owned().into())],
                    now,
                )
                .await
                .expect("a customer");
            // The session lasts 15 minutes of the clock the router reads: long enough to fuzz.
            let real_now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_secs() as i64;
            let (session, _) = keys
                .mint_session(&as_service, &customer, real_now)
                .await
                .expect("a session");
            [admin.token.to_string(), service.token.to_string(), session]
        });
        Harness {
            router: candor_http::app(Arc::new(vault)),
            runtime,
            tokens,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(newline) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let Ok(line) = std::str::from_utf8(&data[..newline]) else {
        return;
    };
    let Some((method, path)) = line.split_once(' ') else {
        return;
    };
    let rest = &data[newline + 1..];
    let (caller, body) = rest.split_first().unwrap_or((&0, &[]));
    let h = harness();
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(token) = h.tokens.get(usize::from(*caller % 4).wrapping_sub(1)) {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let Ok(request) = request.body(Body::from(body.to_vec())) else {
        return;
    };
    let response = h
        .runtime
        .block_on(h.router.clone().oneshot(request))
        .expect("the router is infallible");
    let status = response.status();
    assert!(!status.is_server_error(), "{line}: {status}");
    if status.is_client_error() {
        let body = h
            .runtime
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
            .expect("the body is read");
        let error: serde_json::Value =
            serde_json::from_slice(&body).expect("an error body is JSON");
        assert!(error["error"]["code"].is_string(), "{line}: {error}");
    }
});
