//! No read is released, and nothing collected, on a consent already withdrawn in the log:
//! requests race a withdrawal, and the customer's own history must show every allowed read and
//! every collection before the withdrawal or after the next grant.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::helpers::*;

const EMAIL: &str = "marketing.communications.email";
const OPS: &str = "essential.service.operations";
const ROUNDS: usize = 25;
const WORKERS: usize = 4;
/// Requests each worker makes after it has seen the withdrawal acknowledged.
const AFTER: usize = 3;

fn consent(app: &TestApp, session: &str, action: &str) {
    let r = app.send(
        "POST",
        "/v1/subjects/cus_race/consents",
        Some(session),
        Some(json!({ "changes": [{ "purpose": EMAIL, "action": action }] })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A customer who granted email marketing, their session, and a mailer's key.
fn granted() -> (TestApp, String, String) {
    let app = TestApp::spawn();
    let mailer = app.service_key(
        "mailer",
        &[OPS, EMAIL],
        json!({ "can_mint_sessions": true }),
    );
    let r = app.send(
        "PUT",
        "/v1/subjects/cus_race/data",
        Some(&mailer),
        Some(json!({ "purpose": OPS, "fields": { "user.name": "Racer" } })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let me = app.sign_in("cus_race");
    consent(&app, &me, "grant");
    (app, me, mailer)
}

/// Runs `request` on several threads while the customer withdraws, `ROUNDS` times (granting
/// again between rounds); returns the leaves `request` reported as done on the consent.
fn race_withdrawals(
    app: &TestApp,
    me: &str,
    request: &(dyn Fn() -> Option<u64> + Sync),
) -> Vec<u64> {
    let mut done = Vec::new();
    for round in 0..ROUNDS {
        if round > 0 {
            consent(app, me, "grant");
        }
        let started = AtomicUsize::new(0);
        let withdrawn = AtomicBool::new(false);
        let leaves: Vec<Vec<u64>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..WORKERS)
                .map(|_| {
                    s.spawn(|| {
                        let (mut mine, mut after, mut first) = (Vec::new(), 0, true);
                        while after < AFTER {
                            let seen = withdrawn.load(Ordering::SeqCst);
                            mine.extend(request());
                            if first {
                                started.fetch_add(1, Ordering::SeqCst);
                                first = false;
                            }
                            if seen {
                                after += 1;
                            }
                        }
                        mine
                    })
                })
                .collect();
            // The withdrawal goes in while every worker is at work.
            while started.load(Ordering::SeqCst) < WORKERS {
                std::thread::yield_now();
            }
            consent(app, me, "withdraw");
            withdrawn.store(true, Ordering::SeqCst);
            workers.into_iter().map(|h| h.join().unwrap()).collect()
        });
        done.extend(leaves.into_iter().flatten());
    }
    done.sort_unstable();
    done
}

/// The customer's verified history in log order: the leaves of events `rests_on_consent`
/// picks, and those of them logged while the consent stood withdrawn.
fn walk_history(
    app: &TestApp,
    me: &str,
    rests_on_consent: impl Fn(&Value) -> bool,
) -> (Vec<u64>, Vec<u64>) {
    let history = app.whole_history("cus_race", me);
    let mut events: Vec<&Value> = history["events"].as_array().unwrap().iter().collect();
    events.sort_by_key(|e| e["leaf_index"].as_u64());
    let (mut granted, mut picked, mut stale) = (false, Vec::new(), Vec::new());
    for e in events {
        let (event, leaf) = (&e["event"], e["leaf_index"].as_u64().unwrap());
        if event["type"] == "consent_changed" && event["purpose"] == EMAIL {
            granted = event["action"] == "grant";
        } else if event["purpose"] == EMAIL && rests_on_consent(event) {
            picked.push(leaf);
            if !granted {
                stale.push(leaf);
            }
        }
    }
    (picked, stale)
}

fn assert_all_in(done: &[u64], logged: &[u64]) {
    for leaf in done {
        assert!(
            logged.binary_search(leaf).is_ok(),
            "leaf {leaf} was acknowledged but is not in the history as done"
        );
    }
    assert!(done.len() >= ROUNDS * WORKERS, "{}", done.len());
}

#[test]
fn no_read_is_released_after_a_withdrawal_in_the_log() {
    let (app, me, mailer) = granted();
    let r = app.send(
        "PUT",
        "/v1/subjects/cus_race/data",
        Some(&mailer),
        Some(json!({ "purpose": EMAIL, "fields": { "user.contact.email": "race@example.org" } })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let released = race_withdrawals(&app, &me, &|| {
        let r = app.send(
            "POST",
            "/v1/access",
            Some(&mailer),
            Some(json!({ "subject": "cus_race", "purpose": EMAIL,
                         "fields": ["user.contact.email"] })),
        );
        assert!(
            r.status == 200 || r.code() == "consent_changed",
            "{}",
            r.body
        );
        (r.body["data"]["user.contact.email"] == "race@example.org")
            .then(|| r.body["leaf_index"].as_u64().unwrap())
    });
    let (allowed, stale) = walk_history(&app, &me, |event| {
        event["type"] == "accessed"
            && event["fields"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["outcome"] == "allowed")
    });
    assert!(
        stale.is_empty(),
        "reads allowed after a withdrawal, at leaves {stale:?}"
    );
    assert_all_in(&released, &allowed);
}

#[test]
fn nothing_is_collected_after_a_withdrawal_in_the_log() {
    let (app, me, mailer) = granted();
    let collected = race_withdrawals(&app, &me, &|| {
        let r = app.send(
            "PUT",
            "/v1/subjects/cus_race/data",
            Some(&mailer),
            Some(
                json!({ "purpose": EMAIL, "fields": { "user.contact.email": "race@example.org" } }),
            ),
        );
        match r.status {
            200 => Some(r.body["leaf_index"].as_u64().unwrap()),
            _ => {
                assert!(
                    ["consent_required", "consent_changed"].contains(&r.code()),
                    "{}",
                    r.body
                );
                None
            }
        }
    });
    let (logged, stale) = walk_history(&app, &me, |event| event["type"] == "collected");
    assert!(
        stale.is_empty(),
        "collections after a withdrawal, at leaves {stale:?}"
    );
    assert_all_in(&collected, &logged);
}
