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
    let (app, shop) = seeded();
    let a = app.session(&shop, "cus_a");
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
