//! The whole story, end to end, against the real server.

use serde_json::{Value, json};

use crate::helpers::*;

const EMAIL: &str = "ada.lovelace@example.org";
const NAME: &str = "Augusta Ada King";
const ADDRESS: &str = "12 Analytical Row, London";
const OPS: &str = "essential.service.operations";
const MARKETING: &str = "marketing.communications.email";

fn outcomes(r: &Reply) -> Vec<(String, Option<String>)> {
    r.body["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["field"].as_str().unwrap().to_owned(),
                d["reason"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn d(field: &str, reason: Option<&str>) -> (String, Option<String>) {
    (field.to_owned(), reason.map(str::to_owned))
}

#[test]
fn collect_consent_access_history_erase() {
    let app = TestApp::spawn();
    let shop = app.service_key(
        "checkout",
        &[OPS, MARKETING],
        json!({ "can_mint_sessions": true }),
    );
    let ask = |purpose: &str| {
        app.send(
            "POST",
            "/v1/access",
            Some(&shop),
            Some(json!({ "subject": "cus_ada", "purpose": purpose,
                         "fields": ["user.contact.email", "user.name"] })),
        )
    };

    // Collect.
    let put = app.send(
        "PUT",
        "/v1/subjects/cus_ada/data",
        Some(&shop),
        Some(json!({ "purpose": OPS, "fields": {
            "user.contact.email": EMAIL, "user.name": NAME, "user.contact.address": ADDRESS } })),
    );
    assert_eq!(put.status, 200, "{}", put.body);

    // Access without consent: denied, nothing released, logged.
    let denied = ask(MARKETING);
    assert_eq!(denied.status, 200, "{}", denied.body);
    assert_eq!(
        outcomes(&denied),
        [
            d("user.contact.email", Some("no_consent")),
            d("user.name", Some("not_needed_by_purpose"))
        ]
    );
    assert_eq!(denied.body["data"], json!({}));

    // A purpose the key is not bound to: refused, and the refusal is logged.
    let refused = ask("analytics.reporting");
    assert_eq!(
        (refused.status, refused.code()),
        (403, "purpose_not_permitted")
    );

    // A contract purpose needs no consent but gets only its categories.
    let ops = ask(OPS);
    assert_eq!(
        ops.body["data"],
        json!({ "user.contact.email": EMAIL, "user.name": NAME })
    );

    // The customer grants marketing.
    let ada = app.sign_in("cus_ada");
    let grant = app.send(
        "POST",
        "/v1/subjects/cus_ada/consents",
        Some(&ada),
        Some(json!({ "changes": [{ "purpose": MARKETING, "action": "grant" }] })),
    );
    assert_eq!(grant.status, 200, "{}", grant.body);

    // Allowed now, and only the field the purpose needs.
    let allowed = ask(MARKETING);
    assert_eq!(
        outcomes(&allowed),
        [
            d("user.contact.email", None),
            d("user.name", Some("not_needed_by_purpose"))
        ]
    );
    assert_eq!(allowed.body["data"], json!({ "user.contact.email": EMAIL }));

    // Withdrawn: denied again.
    let withdraw = app.send(
        "POST",
        "/v1/subjects/cus_ada/consents",
        Some(&ada),
        Some(json!({ "changes": [{ "purpose": MARKETING, "action": "withdraw" }] })),
    );
    assert_eq!(withdraw.status, 200);
    let consents = app.send("GET", "/v1/subjects/cus_ada/consents", Some(&ada), None);
    let marketing_state = consents.body["in_force"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purpose"] == MARKETING)
        .unwrap()["state"]
        .clone();
    assert_eq!(marketing_state, "withdrawn");
    assert_eq!(
        consents.body["history"].as_array().unwrap().len(),
        2,
        "full history kept"
    );
    assert_eq!(
        outcomes(&ask(MARKETING)),
        [
            d("user.contact.email", Some("consent_withdrawn")),
            d("user.name", Some("not_needed_by_purpose"))
        ]
    );

    // History: every event, each with a proof that verifies against the signed checkpoint.
    let history = app.send("GET", "/v1/subjects/cus_ada/history", Some(&ada), None);
    assert_eq!(history.status, 200, "{}", history.body);
    let before = verify_history(&history.body, &app.log_key);
    let kinds: Vec<&str> = history.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "collected",
            "accessed",
            "refused",
            "accessed",
            "session_started",
            "consent_changed",
            "accessed",
            "consent_changed",
            "accessed"
        ]
    );
    let actor = &history.body["events"][1]["event"]["actor"];
    assert_eq!(
        (actor["kind"].as_str(), actor["name"].as_str()),
        (Some("service"), Some("checkout"))
    );

    // The customer reads everything held about them (right of access), and that read is logged too.
    let mine = app.send("GET", "/v1/subjects/cus_ada/data", Some(&ada), None);
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(
        mine.body["data"],
        json!({ "user.contact.email": EMAIL, "user.name": NAME, "user.contact.address": ADDRESS })
    );
    let again = app.send("GET", "/v1/subjects/cus_ada/history", Some(&ada), None);
    let last = again.body["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["event"]["purpose"], "data_subject_access");
    assert_eq!(last["event"]["actor"]["kind"], "subject");

    // Nothing personal in the database files or the server's log, even at debug level.
    let db = app.database_bytes();
    let log = app.server_log();
    for value in [EMAIL, NAME, ADDRESS, "ada.lovelace"] {
        assert!(
            !contains(&db, value.as_bytes()),
            "{value} is in the database"
        );
        assert!(!log.contains(value), "{value} is in the server log");
    }
    assert!(
        !log.contains(&shop) && !log.contains(&ada),
        "a secret is in the server log"
    );

    // Erase.
    let erased = app.send("DELETE", "/v1/subjects/cus_ada", Some(&ada), None);
    assert_eq!(erased.status, 200, "{}", erased.body);
    assert_eq!(erased.body["erased"], true);

    // Every read now says erased.
    assert_eq!(ask(OPS).code(), "subject_erased");
    assert_eq!(ask(OPS).status, 410);
    for (method, path) in [
        ("GET", "/v1/subjects/cus_ada/history"),
        ("GET", "/v1/subjects/cus_ada/data"),
        ("GET", "/v1/subjects/cus_ada/consents"),
        ("DELETE", "/v1/subjects/cus_ada"),
    ] {
        let r = app.send(method, path, Some(&ada), None);
        assert_eq!(
            (r.status, r.code()),
            (410, "subject_erased"),
            "{method} {path}"
        );
    }
    let rewrite = app.send(
        "PUT",
        "/v1/subjects/cus_ada/data",
        Some(&shop),
        Some(json!({ "purpose": OPS, "fields": { "user.name": NAME } })),
    );
    assert_eq!(rewrite.code(), "subject_erased");

    // The log still verifies: the old proofs hold against the old checkpoint, and the new
    // checkpoint provably extends it.
    verify_history(&history.body, &app.log_key);
    let note = app.send("GET", "/log/checkpoint", None, None).body;
    let key = candor_log::NoteVerifier::parse(&app.log_key).unwrap();
    let now = candor_log::Checkpoint::open(note.as_str().unwrap(), &key).unwrap();
    assert!(now.size > before.size);
    let proof = app.send(
        "GET",
        &format!("/log/consistency?from={}&to={}", before.size, now.size),
        None,
        None,
    );
    let proof: Vec<candor_log::Hash> = proof.body["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| candor_log::Hash::from_slice(&b64(h)).unwrap())
        .collect();
    candor_log::verify_consistency(before.size, now.size, &proof, &before.root.0, &now.root.0)
        .expect("new checkpoint extends the old one");

    // The erasure receipt opens the erasure event's commitment.
    let receipt = &erased.body;
    let canonical: Value =
        serde_json::from_str(receipt["canonical_event"].as_str().unwrap()).unwrap();
    assert_eq!(canonical["type"], "erased");

    // Nothing of the customer can be decrypted from the database: no key, no fields, no bodies.
    let db = rusqlite::Connection::open(app.home().join("candor.db")).unwrap();
    let count = |sql: &str| db.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(
        count("SELECT count(*) FROM subjects WHERE id = 'cus_ada' AND wrapped_key IS NULL"),
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM fields WHERE subject_id = 'cus_ada'"),
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM consents WHERE subject_id = 'cus_ada'"),
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM blind_index WHERE subject_id = 'cus_ada'"),
        0
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM events WHERE sealed_body IS NOT NULL
             AND subject_id <> 'candor.operator'"
        ),
        0
    );
    let all = app.database_bytes();
    for value in [EMAIL, NAME, ADDRESS] {
        assert!(!contains(&all, value.as_bytes()));
    }
}

#[test]
fn lookup_by_email_goes_through_the_blind_index() {
    let app = TestApp::spawn();
    let shop = app.service_key("support", &[OPS], json!({}));
    for (id, email) in [
        ("cus_1", "Grace@Example.org"),
        ("cus_2", "alan@example.org"),
    ] {
        let r = app.send(
            "PUT",
            &format!("/v1/subjects/{id}/data"),
            Some(&shop),
            Some(json!({ "purpose": OPS, "fields": { "user.contact.email": email } })),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let find = |value: &str| {
        app.send(
            "POST",
            "/v1/lookup",
            Some(&shop),
            Some(json!({ "purpose": OPS, "category": "user.contact.email", "value": value })),
        )
    };
    assert_eq!(
        find("  grace@example.ORG ").body["subjects"],
        json!(["cus_1"])
    );
    assert_eq!(find("nobody@example.org").body["subjects"], json!([]));
    let not_indexed = app.send(
        "POST",
        "/v1/lookup",
        Some(&shop),
        Some(json!({ "purpose": OPS, "category": "user.name", "value": "x" })),
    );
    assert_eq!(not_indexed.code(), "invalid_request");
}

#[test]
fn gpc_withdraws_sale_and_sharing_and_is_recorded() {
    let app = TestApp::spawn();
    let shop = app.service_key("web", &[OPS], json!({ "can_mint_sessions": true }));
    let r = app.send(
        "PUT",
        "/v1/subjects/cus_gpc/data",
        Some(&shop),
        Some(json!({ "purpose": OPS, "fields": { "user.name": "Gigi" } })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let me = app.sign_in("cus_gpc");
    let grant_all = json!({ "changes": [
        { "purpose": "third_party_sharing", "action": "grant" },
        { "purpose": MARKETING, "action": "grant" } ] });
    let state = |r: &Reply, purpose: &str| {
        r.body["in_force"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["purpose"] == purpose)
            .unwrap()["state"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // "Sec-GPC: true" is not the signal.
    let ignored = app.send_with(
        "POST",
        "/v1/subjects/cus_gpc/consents",
        Some(&me),
        Some(grant_all.clone()),
        &[("Sec-GPC", "true")],
    );
    assert_eq!(state(&ignored, "third_party_sharing"), "granted");

    let honoured = app.send_with(
        "POST",
        "/v1/subjects/cus_gpc/consents",
        Some(&me),
        Some(grant_all),
        &[("Sec-GPC", "1")],
    );
    assert_eq!(state(&honoured, "third_party_sharing"), "withdrawn");
    assert_eq!(
        state(&honoured, MARKETING),
        "granted",
        "GPC touches only sale and sharing"
    );
    let last = honoured.body["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["evidence"]["channel"], "gpc");
    assert_eq!(last["action"], "withdraw");
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let mut app = TestApp::spawn();
    let shop = app.service_key("checkout", &[OPS], json!({ "can_mint_sessions": true }));
    for i in 0..20 {
        let r = app.send(
            "PUT",
            &format!("/v1/subjects/cus_{i}/data"),
            Some(&shop),
            Some(json!({ "purpose": OPS, "fields": { "user.name": format!("N{i}") } })),
        );
        assert_eq!(r.status, 200);
    }
    let size = app.tree_size();
    app.restart();
    assert_eq!(
        app.tree_size(),
        size,
        "every acknowledged event is still in the log"
    );
    let me = app.sign_in("cus_7");
    let history = app.send("GET", "/v1/subjects/cus_7/history", Some(&me), None);
    verify_history(&history.body, &app.log_key);
    let read = app.send(
        "POST",
        "/v1/access",
        Some(&shop),
        Some(json!({ "subject": "cus_7", "purpose": OPS, "fields": ["user.name"] })),
    );
    assert_eq!(read.body["data"]["user.name"], "N7");
}

#[test]
fn a_second_server_on_the_same_home_refuses_to_sequence() {
    let app = TestApp::spawn();
    let home = app.home();
    let (ok, out) = app.candor(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--dir",
        home.to_str().unwrap(),
    ]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("another Candor process sequences this log"),
        "{out}"
    );
    // The first still serves.
    assert_eq!(app.send("GET", "/healthz", None, None).status, 200);
}
