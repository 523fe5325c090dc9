//! Keys have a lifecycle (created, rotated with an overlap, revoked, the admin key replaced
//! from the command line), and every key and session change is in the operator log, which
//! auditors verify as a customer verifies their history.

use serde_json::{Value, json};

use crate::helpers::TestApp;

const OPS: &str = "essential.service.operations";

fn collect(app: &TestApp, token: &str, subject: &str) -> u16 {
    app.send(
        "PUT",
        &format!("/v1/subjects/{subject}/data"),
        Some(token),
        Some(json!({ "purpose": OPS, "fields": { "user.name": "R" } })),
    )
    .status
}

/// The operator log's events as `type actor-kind key-id`, after verifying every page and that
/// the pages are complete.
fn operator_log(app: &TestApp, admin: &str) -> Vec<(String, String, String)> {
    let log = app.whole_log("/v1/operator/history", admin);
    log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let ev = &e["event"];
            assert_eq!(ev["subject"], "candor.operator");
            (
                ev["type"].as_str().unwrap().to_owned(),
                ev["actor"]["kind"].as_str().unwrap().to_owned(),
                ev["key"]["id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn keys_rotate_with_an_overlap_and_every_change_is_in_the_operator_log() {
    let mut app = TestApp::spawn();
    let created = app.send(
        "POST",
        "/v1/keys",
        Some(&app.admin),
        Some(json!({ "name": "checkout", "purposes": [OPS], "can_mint_sessions": true })),
    );
    assert_eq!(created.status, 200, "{}", created.body);
    let (first_id, first) = (
        created.body["id"].as_str().unwrap().to_owned(),
        created.body["token"].as_str().unwrap().to_owned(),
    );
    assert_eq!(collect(&app, &first, "cus_r"), 200);

    // Rotated with an hour's overlap: both work, the successor with the same rights.
    let rotate = |id: &str, body: Value| {
        app.send(
            "POST",
            &format!("/v1/keys/{id}/rotate"),
            Some(&app.admin),
            Some(body),
        )
    };
    let r = rotate(&first_id, json!({ "overlap_secs": 3600 }));
    assert_eq!(r.status, 200, "{}", r.body);
    let (second_id, second) = (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["token"].as_str().unwrap().to_owned(),
    );
    assert!(r.body["rotated_key_expires_at"].as_i64().is_some());
    assert_eq!(collect(&app, &first, "cus_r"), 200, "inside the overlap");
    assert_eq!(collect(&app, &second, "cus_r"), 200);
    let session = app.send(
        "POST",
        "/v1/subjects/cus_r/sessions",
        Some(&second),
        Some(json!({})),
    );
    assert_eq!(
        session.status, 200,
        "the successor keeps the right to mint sessions"
    );

    // Rotated with no overlap: refused from the moment the rotation returns.
    let r = rotate(&second_id, json!({ "overlap_secs": 0 }));
    assert_eq!(r.status, 200, "{}", r.body);
    let third = r.body["token"].as_str().unwrap().to_owned();
    assert_eq!(collect(&app, &second, "cus_r"), 401);
    assert_eq!(collect(&app, &third, "cus_r"), 200);
    for (body, code) in [
        (json!({ "overlap_secs": 2_592_001 }), "invalid_request"),
        (json!({ "overlap_secs": -1 }), "invalid_request"),
        (json!({ "overlap_secs": 1.5 }), "invalid_body"),
        (json!({ "overlap": 5 }), "invalid_body"),
    ] {
        let r = rotate(&first_id, body);
        assert_eq!(r.code(), code, "{}", r.body);
    }
    let r = rotate(&second_id, json!({}));
    assert_eq!(
        (r.status, r.code()),
        (409, "key_not_live"),
        "an expired key is not rotated"
    );
    let admin_id = app.send("GET", "/v1/keys", Some(&app.admin), None).body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(rotate(&admin_id, json!({})).status, 403);
    let r = app.send(
        "DELETE",
        &format!("/v1/keys/{first_id}"),
        Some(&app.admin),
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(collect(&app, &first, "cus_r"), 401);

    // Only the admin reads the operator log.
    assert_eq!(
        app.send("GET", "/v1/operator/history", Some(&third), None)
            .status,
        403
    );

    // A lost admin key is replaced from the command line by whoever holds the home.
    app.stop();
    let (ok, out) = app.candor(&["admin-key", "--json", "--dir", app.home().to_str().unwrap()]);
    assert!(ok, "{out}");
    let new_admin = serde_json::from_str::<Value>(&out).unwrap()["admin_key"]
        .as_str()
        .unwrap()
        .to_owned();
    app.start();
    assert_eq!(
        app.send("GET", "/v1/keys", Some(&app.admin), None).status,
        401,
        "the old admin key is revoked"
    );
    let keys = app.send("GET", "/v1/keys", Some(&new_admin), None);
    assert_eq!(keys.status, 200);
    let new_admin_id = keys.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "admin" && k["revoked_at"].is_null())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let third_id = keys.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "checkout" && k["expires_at"].is_null())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let step = |kind: &str, actor: &str, key: &str| (kind.into(), actor.into(), key.into());
    assert_eq!(
        operator_log(&app, &new_admin),
        vec![
            step("key_created", "command_line", &admin_id),
            step("key_epoch_started", "candor", ""),
            step("key_created", "admin", &first_id),
            step("key_rotated", "admin", &first_id),
            step("session_delegated", "service", &second_id),
            step("key_rotated", "admin", &second_id),
            step("key_revoked", "admin", &first_id),
            step("key_created", "command_line", &new_admin_id),
            step("key_revoked", "command_line", &admin_id),
        ]
    );
    let log = app.whole_log("/v1/operator/history", &new_admin);
    let text = log.to_string();
    assert!(
        !text.contains("cus_r"),
        "the operator log names no customer"
    );
    let rotated = &log["events"][5]["event"];
    assert_eq!(rotated["successor"], third_id.as_str());
}
