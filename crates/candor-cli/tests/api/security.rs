//! Authentication and authorisation: every caller reaches only what its credentials allow.

use serde_json::json;

use crate::helpers::*;

const OPS: &str = "essential.service.operations";

fn seeded() -> (TestApp, String) {
    let app = TestApp::spawn();
    let shop = app.service_key("checkout", &[OPS], json!({ "can_mint_sessions": true }));
    for id in ["cus_a", "cus_b"] {
        let r = app.send(
            "PUT",
            &format!("/v1/subjects/{id}/data"),
            Some(&shop),
            Some(json!({ "purpose": OPS, "fields": { "user.name": "someone" } })),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    (app, shop)
}

#[test]
fn a_customer_reaches_only_their_own_data() {
    let (app, _) = seeded();
    let a = app.sign_in("cus_a");
    for (method, path) in [
        ("GET", "/v1/subjects/cus_b/history"),
        ("GET", "/v1/subjects/cus_b/data"),
        ("GET", "/v1/subjects/cus_b/consents"),
        ("DELETE", "/v1/subjects/cus_b"),
    ] {
        let r = app.send(method, path, Some(&a), None);
        assert_eq!((r.status, r.code()), (403, "forbidden"), "{method} {path}");
    }
    let r = app.send(
        "POST",
        "/v1/subjects/cus_b/consents",
        Some(&a),
        Some(json!({ "changes": [{ "purpose": "analytics.reporting", "action": "grant" }] })),
    );
    assert_eq!(r.status, 403);
    // A customer token is not a service key.
    let r = app.send(
        "POST",
        "/v1/access",
        Some(&a),
        Some(json!({ "subject": "cus_a", "purpose": OPS, "fields": ["user.name"] })),
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        app.send("GET", "/v1/subjects/cus_a/history", Some(&a), None)
            .status,
        200
    );
}

#[test]
fn roles_are_separated() {
    let (app, shop) = seeded();
    // The admin manages keys but reads no personal data.
    let r = app.send(
        "POST",
        "/v1/access",
        Some(&app.admin),
        Some(json!({ "subject": "cus_a", "purpose": OPS, "fields": ["user.name"] })),
    );
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    // Services cannot create keys or read a customer's history.
    let r = app.send(
        "POST",
        "/v1/keys",
        Some(&shop),
        Some(json!({ "name": "x" })),
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        app.send("GET", "/v1/subjects/cus_a/history", Some(&shop), None)
            .status,
        403
    );
    // Services read through purposes, never through the customer's own-data route.
    let r = app.send("GET", "/v1/subjects/cus_a/data", Some(&shop), None);
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    // Only keys allowed to mint sessions can.
    let plain = app.service_key("reporting", &[OPS], json!({}));
    let r = app.send("POST", "/v1/subjects/cus_a/sessions", Some(&plain), None);
    assert_eq!(r.status, 403);
    // Erasure needs the customer, the admin or a key allowed to erase.
    assert_eq!(
        app.send("DELETE", "/v1/subjects/cus_a", Some(&plain), None)
            .status,
        403
    );
    assert_eq!(
        app.send("DELETE", "/v1/subjects/cus_a", Some(&app.admin), None)
            .status,
        200
    );
}

#[test]
fn bad_credentials_are_refused_alike() {
    let (app, shop) = seeded();
    let mut forged = shop.clone();
    forged.pop();
    forged.push(if shop.ends_with('A') { 'B' } else { 'A' });
    let unknown_id = format!("cnd_0000000000000000_{}", &shop[21..]);
    let forged_session = "cst_eyJ9.AAAA".to_owned();
    for token in [
        Some(forged.as_str()),
        Some(unknown_id.as_str()),
        Some(&forged_session),
        Some(""),
        None,
    ] {
        let r = app.send(
            "POST",
            "/v1/access",
            token,
            Some(json!({ "subject": "cus_a", "purpose": OPS, "fields": ["user.name"] })),
        );
        assert_eq!((r.status, r.code()), (401, "unauthenticated"), "{token:?}");
    }
}

#[test]
fn key_purposes_and_recipients_must_exist() {
    let app = TestApp::spawn();
    let r = app.send(
        "POST",
        "/v1/keys",
        Some(&app.admin),
        Some(json!({ "name": "x", "purposes": ["marketing.telepathy"] })),
    );
    assert_eq!((r.status, r.code()), (400, "unknown_purpose"));
    let r = app.send(
        "POST",
        "/v1/keys",
        Some(&app.admin),
        Some(json!({ "name": "x", "purposes": [OPS], "recipient": "nobody" })),
    );
    assert_eq!((r.status, r.code()), (400, "recipient_not_declared"));
}

#[test]
fn a_third_party_key_reads_only_for_purposes_that_declare_it() {
    let app = TestApp::spawn();
    let shop = app.service_key("checkout", &[OPS], json!({}));
    let r = app.send(
        "PUT",
        "/v1/subjects/cus_p/data",
        Some(&shop),
        Some(json!({ "purpose": OPS, "fields": { "user.contact.address": "1 Parcel St" } })),
    );
    assert_eq!(r.status, 200);
    let courier = app.service_key("ParcelGo", &[OPS], json!({ "recipient": "parcelgo" }));
    let ads = app.service_key("AdReach", &[OPS], json!({ "recipient": "adreach" }));
    let read = |key: &str| {
        app.send(
            "POST",
            "/v1/access",
            Some(key),
            Some(json!({ "subject": "cus_p", "purpose": OPS, "fields": ["user.contact.address"] })),
        )
    };
    assert_eq!(
        read(&courier).body["data"]["user.contact.address"],
        "1 Parcel St"
    );
    let denied = read(&ads);
    assert_eq!(
        denied.body["decisions"][0]["reason"],
        "recipient_not_declared"
    );
    assert_eq!(denied.body["data"], json!({}));
}

#[test]
fn a_third_party_key_collects_only_for_purposes_that_declare_it() {
    let app = TestApp::spawn();
    let courier = app.service_key("ParcelGo", &[OPS], json!({ "recipient": "parcelgo" }));
    let ads = app.service_key("AdReach", &[OPS], json!({ "recipient": "adreach" }));
    let put = |key: &str, subject: &str| {
        app.send(
            "PUT",
            &format!("/v1/subjects/{subject}/data"),
            Some(key),
            Some(json!({ "purpose": OPS, "fields": { "user.contact.address": "1 Parcel St" } })),
        )
    };
    assert_eq!(put(&courier, "cus_q").status, 200);
    let refused = put(&ads, "cus_r");
    assert_eq!(
        (refused.status, refused.code()),
        (400, "recipient_not_declared")
    );
    let shop = app.service_key("checkout", &[OPS], json!({}));
    let r = app.send(
        "POST",
        "/v1/access",
        Some(&shop),
        Some(json!({ "subject": "cus_r", "purpose": OPS, "fields": ["user.contact.address"] })),
    );
    assert_eq!(
        r.code(),
        "subject_not_found",
        "nothing was stored for the refused collection"
    );
}

#[test]
fn a_session_is_minted_only_for_a_customer_candor_holds() {
    let (app, shop) = seeded();
    let r = app.send(
        "POST",
        "/v1/subjects/cus_nobody/sessions",
        Some(&shop),
        None,
    );
    assert_eq!((r.status, r.code()), (404, "subject_not_found"));
    let r = app.send("POST", "/v1/subjects/cus_a/sessions", Some(&shop), None);
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Consent evidence names who really acted: a service cannot claim the customer acted in the
/// privacy center, nor send the browser's GPC signal, and its GPC touches only its own purposes.
#[test]
fn a_service_cannot_pass_its_consent_changes_off_as_the_customer_s() {
    let (app, _) = seeded();
    let sharer = app.service_key("sharer", &["third_party_sharing"], json!({}));
    let mailer = app.service_key("mailer", &["marketing.communications.email"], json!({}));
    for channel in ["privacy_center", "gpc"] {
        let r = app.send(
            "POST",
            "/v1/subjects/cus_a/consents",
            Some(&sharer),
            Some(
                json!({ "changes": [{ "purpose": "third_party_sharing", "action": "grant",
                "evidence": { "channel": channel, "notice_version": "2026-11" } }] }),
            ),
        );
        assert_eq!((r.status, r.code()), (400, "invalid_request"), "{channel}");
    }
    let grant = |key: &str, purpose: &str| {
        let r = app.send(
            "POST",
            "/v1/subjects/cus_a/consents",
            Some(key),
            Some(json!({ "changes": [{ "purpose": purpose, "action": "grant",
                "evidence": { "channel": "checkout_form", "notice_version": "2026-11" } }] })),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    };
    grant(&sharer, "third_party_sharing");
    // The mailer's call carries Sec-GPC: it may not withdraw sharing it is not bound to.
    let r = app.send_with(
        "POST",
        "/v1/subjects/cus_a/consents",
        Some(&mailer),
        Some(
            json!({ "changes": [{ "purpose": "marketing.communications.email", "action": "grant",
            "evidence": { "channel": "newsletter_form", "notice_version": "2026-11" } }] }),
        ),
        &[("Sec-GPC", "1")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let view = app.send("GET", "/v1/subjects/cus_a/consents", Some(&sharer), None);
    let sharing = view.body["in_force"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purpose"] == "third_party_sharing")
        .unwrap()
        .clone();
    assert_eq!(sharing["state"], "granted", "{}", view.body);
}

/// The types and actors of the customer's history, as they read it signed in themself.
fn history_of(app: &TestApp, subject: &str) -> Vec<serde_json::Value> {
    let me = app.sign_in(subject);
    let r = app.send(
        "GET",
        &format!("/v1/subjects/{subject}/history"),
        Some(&me),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(e["canonical_event"].as_str().unwrap()).unwrap())
        .collect()
}

/// A key that may mint sessions, bound to no purpose, could once read everything, grant
/// consents and erase in the customer's name, unlogged. Its sessions are delegated now: they act
/// within its purposes, every event names it, and the customer's own rights stay theirs.
#[test]
fn a_service_cannot_impersonate_the_customer() {
    let (app, _) = seeded();
    let minter = app.service_key("helpdesk", &[], json!({ "can_mint_sessions": true }));
    let as_a = app.session(&minter, "cus_a");
    let r = app.send("GET", "/v1/subjects/cus_a/data", Some(&as_a), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["data"],
        json!({}),
        "no purpose of the key uses the name"
    );
    for (method, path) in [
        ("GET", "/v1/subjects/cus_a/history"),
        ("DELETE", "/v1/subjects/cus_a"),
    ] {
        let r = app.send(method, path, Some(&as_a), None);
        assert_eq!((r.status, r.code()), (403, "forbidden"), "{method} {path}");
    }
    let r = app.send(
        "POST",
        "/v1/subjects/cus_a/consents",
        Some(&as_a),
        Some(json!({ "changes": [{ "purpose": "analytics.reporting", "action": "grant" }] })),
    );
    assert_eq!(r.status, 403, "{}", r.body);

    // Each of these only where the business allowed the key it, and then in the service's name.
    let trusted = app.service_key(
        "support",
        &["analytics.reporting"],
        json!({ "can_mint_sessions": true, "sessions_may_grant_consent": true,
                "sessions_may_erase": true }),
    );
    let as_b = app.session(&trusted, "cus_b");
    let r = app.send(
        "POST",
        "/v1/subjects/cus_b/consents",
        Some(&as_b),
        Some(
            json!({ "changes": [{ "purpose": "analytics.reporting", "action": "grant",
            "evidence": { "channel": "support_call", "notice_version": "2026-11" } }] }),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let events = history_of(&app, "cus_b");
    let said: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().into(),
                e["actor"]["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    let pairs: Vec<(&str, &str)> = said.iter().map(|(t, k)| (t.as_str(), k.as_str())).collect();
    assert_eq!(
        pairs,
        [
            ("collected", "service"),
            ("session_started", "service"),
            ("consent_changed", "delegate"),
            ("session_started", "subject"),
        ]
    );
    assert_eq!(events[2]["actor"]["through"]["name"], "support");
    assert_eq!(events[1]["method"], "delegated");
    assert_eq!(events[3]["method"], "oidc");
    let r = app.send("DELETE", "/v1/subjects/cus_b", Some(&as_b), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let erasure: serde_json::Value =
        serde_json::from_str(r.body["canonical_event"].as_str().unwrap()).unwrap();
    assert_eq!(erasure["actor"]["kind"], "delegate");
}

/// Sign-in takes only an ID token the business's provider signed for Candor, for a nonce Candor
/// issued, once; whatever is wrong, the answer is the same, so it tells nobody which customers
/// exist or were erased.
#[test]
fn sign_in_takes_only_tokens_the_provider_signed_for_candor_once() {
    let (app, shop) = seeded();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |nonce: &str| {
        json!({ "iss": app.idp.issuer, "aud": crate::idp::AUDIENCE, "sub": "cus_a",
                "nonce": nonce, "iat": now, "exp": now + 300 })
    };
    let with = |change: &dyn Fn(&mut serde_json::Value)| {
        app.sign_in_with(|nonce| {
            let mut c = claims(nonce);
            change(&mut c);
            app.idp.sign(&c)
        })
    };
    let refused = |r: Reply, what: &str| {
        assert_eq!(
            (r.status, r.code()),
            (401, "signin_failed"),
            "{what}: {}",
            r.body
        );
        r.body
    };
    refused(with(&|c| c["aud"] = "another-client".into()), "audience");
    refused(with(&|c| c["iss"] = "https://idp.example".into()), "issuer");
    refused(with(&|c| c["exp"] = (now - 3600).into()), "expired");
    refused(with(&|c| c["nonce"] = "cnn_made_up".into()), "nonce");
    refused(
        app.sign_in_with(|n| app.idp.forge(&claims(n))),
        "unpublished key",
    );
    refused(
        app.sign_in_with(|n| {
            // Unsigned (`alg: none`), as a service could write one itself.
            let head = base64url(br#"{"alg":"none","kid":"test-key-1"}"#);
            format!("{head}.{}.", base64url(claims(n).to_string().as_bytes()))
        }),
        "unsigned",
    );
    // A token that worked once is spent, on this node and any other.
    let mut used = String::new();
    let r = app.sign_in_with(|n| {
        used = app.idp.sign(&claims(n));
        used.clone()
    });
    assert_eq!(r.status, 200, "{}", r.body);
    let again = app.send(
        "POST",
        "/v1/signin/oidc",
        None,
        Some(json!({ "id_token": used })),
    );
    refused(again, "replayed");

    // Unknown and erased customers are refused alike.
    let r = app.send("DELETE", "/v1/subjects/cus_b", Some(&app.admin), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let erased = refused(with(&|c| c["sub"] = "cus_b".into()), "erased");
    let unknown = refused(with(&|c| c["sub"] = "cus_zz".into()), "unknown");
    assert_eq!(erased, unknown);
    drop(shop);
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Who tries, how, with what body; the action the log names and the actor kind it records.
type Attempt<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Option<serde_json::Value>,
    &'a str,
    &'a str,
);

/// Whoever is refused acting on a customer's data, the customer's history shows the attempt:
/// another customer (unnamed), a service, a service's session, the admin.
#[test]
fn every_refused_attempt_is_in_the_customer_s_log() {
    let (app, shop) = seeded();
    let other = app.sign_in("cus_b");
    let helpdesk = app.service_key("helpdesk", &[], json!({ "can_mint_sessions": true }));
    let as_a = app.session(&helpdesk, "cus_a");
    let mailer = app.service_key("mailer", &[OPS], json!({}));
    let consents = json!({ "changes": [{ "purpose": "analytics.reporting", "action": "grant",
        "evidence": { "channel": "checkout", "notice_version": "2026-11" } }] });
    let attempts: Vec<Attempt> = vec![
        // (who, method, path, body, the action the log names, the actor kind it records)
        (
            &other,
            "GET",
            "/v1/subjects/cus_a/data",
            None,
            "read_data",
            "another_customer",
        ),
        (
            &other,
            "GET",
            "/v1/subjects/cus_a/history",
            None,
            "read_history",
            "another_customer",
        ),
        (
            &other,
            "DELETE",
            "/v1/subjects/cus_a",
            None,
            "erase",
            "another_customer",
        ),
        (
            &shop,
            "DELETE",
            "/v1/subjects/cus_a",
            None,
            "erase",
            "service",
        ),
        (
            &shop,
            "POST",
            "/v1/subjects/cus_a/consents",
            Some(consents.clone()),
            "change_consents",
            "service",
        ),
        (
            &shop,
            "GET",
            "/v1/subjects/cus_a/history",
            None,
            "read_history",
            "service",
        ),
        (
            &mailer,
            "POST",
            "/v1/subjects/cus_a/sessions",
            Some(json!({})),
            "start_session",
            "service",
        ),
        (
            &as_a,
            "DELETE",
            "/v1/subjects/cus_a",
            None,
            "erase",
            "delegate",
        ),
        (
            &app.admin,
            "GET",
            "/v1/subjects/cus_a/data",
            None,
            "read_data",
            "admin",
        ),
        (
            &app.admin,
            "GET",
            "/v1/subjects/cus_a/history",
            None,
            "read_history",
            "admin",
        ),
    ];
    let mut expected = Vec::new();
    for (token, method, path, body, action, actor) in &attempts {
        let r = app.send(method, path, Some(token), body.clone());
        assert!(
            r.status == 403 || r.code() == "purpose_not_permitted",
            "{method} {path}: {} {}",
            r.status,
            r.body
        );
        expected.push((action.to_string(), actor.to_string()));
    }
    // A session minted for a customer Candor does not hold is refused without a log to add to.
    let r = app.send("GET", "/v1/subjects/cus_nobody/history", Some(&other), None);
    assert_eq!(r.status, 403);

    let me = app.sign_in("cus_a");
    let history = app.whole_history("cus_a", &me);
    let events = history["events"].as_array().unwrap();
    let refused: Vec<(String, String)> = events
        .iter()
        .map(|e| &e["event"])
        .filter(|e| e["type"] == "attempt_refused")
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"]["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(refused, expected);
    assert!(
        !events
            .iter()
            .any(|e| e["canonical_event"].as_str().unwrap().contains("cus_b")),
        "the other customer's id is theirs"
    );
}
