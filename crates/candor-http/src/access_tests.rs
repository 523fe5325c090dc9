//! The route table, checked against the real router in process: every route but the public ones
//! refuses a missing credential, every bearer route refuses each kind of caller it does not
//! admit and lets through each it does, and every route is in the OpenAPI document. The list of
//! routes is the table the router is built from, never a list written here.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use candor_core::{DataMap, SAMPLE_DATA_MAP, SubjectId};
use candor_crypto::RootKey;
use candor_log::NoteSigner;
use candor_store::{Db, SqliteStore};
use candor_vault::keys::Delegation;
use candor_vault::{NewKeySpec, SequencerClaim, Vault};
use tower::ServiceExt;
use utoipa::OpenApi;
use zeroize::Zeroizing;

use crate::{Access, ApiDoc, Caller, RouteSpec, app, now, route_table};

const OPS: &str = "essential.service.operations";

/// A vault with one customer, `cus_a`, and a token for each kind of caller.
struct Fixture {
    _dir: tempfile::TempDir,
    vault: Arc<Vault>,
    admin: String,
    // A service key with every capability, so that only the caller's kind can refuse it.
    service: String,
    own_customer: String,
    other_customer: String,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Db::Sqlite(Arc::new(
        SqliteStore::open(&dir.path().join("c.db"), &candor_vault::schema()).unwrap(),
    ));
    let claim = SequencerClaim {
        holder: "test".into(),
        ttl: std::time::Duration::from_secs(10),
    };
    let root = RootKey::generate();
    let vault = Arc::new(
        Vault::open(
            store,
            DataMap::parse(SAMPLE_DATA_MAP).unwrap(),
            &root,
            candor_vault::Keyring::in_memory(&root),
            NoteSigner::generate("test.candor.example/log").unwrap(),
            &claim,
        )
        .unwrap(),
    );
    let admin = vault.keys().create_admin_key(now()).await.unwrap();
    let admin_principal = vault.keys().authenticate(&admin.token, now()).unwrap();
    let spec = NewKeySpec {
        name: "everything".into(),
        purposes: vec![OPS.into()],
        recipient: None,
        can_mint_sessions: true,
        can_erase: true,
        expires_at: None,
        // The routes' admission is under test, not what a delegated session may do.
        sessions: Delegation {
            sessions_may_erase: true,
            sessions_may_export: true,
            sessions_may_grant_consent: true,
        },
    };
    let service = vault
        .keys()
        .create_key(&admin_principal, spec, now())
        .await
        .unwrap();
    let service_principal = vault.keys().authenticate(&service.token, now()).unwrap();
    let mut sessions = Vec::new();
    for id in ["cus_a", "cus_b"] {
        let subject = SubjectId::parse(id).unwrap();
        let fields = vec![("user.name".to_owned(), Zeroizing::new("A".to_owned()))];
        vault
            .collection()
            .collect(&service_principal, &subject, OPS, fields, now())
            .await
            .unwrap();
        let (token, _) = vault
            .keys()
            .mint_session(&service_principal, &subject, now())
            .await
            .unwrap();
        sessions.push(token);
    }
    let other_customer = sessions.pop().unwrap();
    let own_customer = sessions.pop().unwrap();
    Fixture {
        _dir: dir,
        vault,
        admin: admin.token.to_string(),
        service: service.token.to_string(),
        own_customer,
        other_customer,
    }
}

/// The route's path with its parameters filled in: the customer is `cus_a`.
fn concrete(path: &str) -> String {
    path.replace("{id}", "cus_a")
        .replace("{index}", "0")
        .replace("{*path}", "0/000")
}

async fn call(vault: &Arc<Vault>, spec: &RouteSpec, token: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::builder()
        .method(spec.method.clone())
        .uri(concrete(spec.path));
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = app(vault.clone())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn every_route_but_the_public_ones_refuses_a_missing_credential() {
    let f = fixture().await;
    let table = route_table();
    assert!(table.len() >= 18, "the whole API is in the table");
    for spec in &table {
        let (status, body) = call(&f.vault, spec, None).await;
        let what = format!("{} {}: {status} {body}", spec.method, spec.path);
        match spec.access {
            Access::Public => assert!(
                ![
                    StatusCode::UNAUTHORIZED,
                    StatusCode::FORBIDDEN,
                    StatusCode::INTERNAL_SERVER_ERROR
                ]
                .contains(&status),
                "{what}"
            ),
            Access::Node | Access::Bearer(_) => {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
                assert!(body.contains("\"unauthenticated\""), "{what}");
            }
        }
        // A token that is no token is refused the same way.
        if let Access::Bearer(_) = spec.access {
            let (status, _) = call(&f.vault, spec, Some("cnd_nope_nope")).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        }
    }
}

#[tokio::test]
async fn every_bearer_route_admits_exactly_the_callers_it_declares() {
    let mut bearer_routes = 0;
    for spec in route_table() {
        let Access::Bearer(admitted) = spec.access else {
            continue;
        };
        bearer_routes += 1;
        // A fresh vault per route: the admitted callers may erase the customer.
        let f = fixture().await;
        let callers = [
            (Some(Caller::Admin), &f.admin),
            (Some(Caller::Service), &f.service),
            (Some(Caller::Customer), &f.own_customer),
            // Another customer is never admitted to `cus_a`'s routes.
            (None, &f.other_customer),
        ];
        // Refusals first, so an admitted erasure cannot hide one.
        let (refused, allowed): (Vec<_>, Vec<_>) = callers
            .iter()
            .partition(|(caller, _)| !caller.is_some_and(|c| admitted.contains(&c)));
        for (caller, token) in refused.into_iter().chain(allowed) {
            let (status, body) = call(&f.vault, &spec, Some(token)).await;
            let what = format!(
                "{} {} as {caller:?}: {status} {body}",
                spec.method, spec.path
            );
            if caller.is_some_and(|c| admitted.contains(&c)) {
                assert!(
                    ![
                        StatusCode::UNAUTHORIZED,
                        StatusCode::FORBIDDEN,
                        StatusCode::INTERNAL_SERVER_ERROR
                    ]
                    .contains(&status),
                    "{what}"
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{what}");
                assert!(body.contains("\"forbidden\""), "{what}");
            }
        }
    }
    assert!(bearer_routes >= 10);
}

#[test]
fn every_route_is_in_the_openapi_document_with_its_security() {
    let doc = ApiDoc::openapi();
    let mut documented = 0;
    for spec in route_table() {
        let path = spec.path.replace("{*", "{");
        let item = doc
            .paths
            .paths
            .get(&path)
            .unwrap_or_else(|| panic!("{path} is not in the OpenAPI document"));
        let operation = match spec.method {
            Method::GET => &item.get,
            Method::PUT => &item.put,
            Method::POST => &item.post,
            Method::DELETE => &item.delete,
            _ => panic!("{} is not a method the API uses", spec.method),
        }
        .as_ref()
        .unwrap_or_else(|| panic!("{} {path} is not in the OpenAPI document", spec.method));
        documented += 1;
        let schemes: Vec<String> = operation
            .security
            .iter()
            .flatten()
            .flat_map(|requirement| {
                serde_json::to_value(requirement)
                    .unwrap()
                    .as_object()
                    .unwrap()
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        let expected: &[&str] = match spec.access {
            Access::Public => &[],
            Access::Node => &["node"],
            Access::Bearer(_) => &["bearer"],
        };
        assert_eq!(schemes, expected, "{} {path}", spec.method);
    }
    let operations: usize = doc
        .paths
        .paths
        .values()
        .map(|item| {
            [&item.get, &item.put, &item.post, &item.delete]
                .iter()
                .filter(|o| o.is_some())
                .count()
        })
        .sum();
    assert_eq!(
        operations, documented,
        "the document describes a route the router does not have"
    );
}
