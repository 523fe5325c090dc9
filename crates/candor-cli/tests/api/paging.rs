//! Long records are read a page at a time: a customer with 20,000 events once made a 51 MB
//! history, and 32 fetches of it held 3 GB; now every page is bounded, and the pages together
//! are the whole, verifiable history.

use serde_json::{Value, json};

use crate::helpers::{TestApp, verify_pages};

const EMAIL: &str = "marketing.communications.email";
const CHANGES_PER_REQUEST: usize = 100;
const REQUESTS: usize = 200;

/// Walks `path` page by page (`limit` each), checking each page's bound; returns the pages.
fn walk(app: &TestApp, path: &str, token: &str, limit: usize, items: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let query = match after {
            Some(after) => format!("{path}?limit={limit}&after={after}"),
            None => format!("{path}?limit={limit}"),
        };
        let r = app.send("GET", &query, Some(token), None);
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body[items].as_array().unwrap().len() <= limit);
        after = r.body["next"].as_u64();
        pages.push(r.body);
        if after.is_none() {
            return pages;
        }
    }
}

fn peak_memory_kib(app: &TestApp) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", app.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

#[test]
fn twenty_thousand_events_are_read_in_bounded_pages() {
    let app = TestApp::spawn();
    let minter = app.service_key("ops", &["essential.service.operations"], json!({}));
    let r = app.send(
        "PUT",
        "/v1/subjects/cus_long/data",
        Some(&minter),
        Some(json!({ "purpose": "essential.service.operations",
                     "fields": { "user.contact.email": "long@example.com" } })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let me = app.sign_in("cus_long");
    let changes: Vec<Value> = (0..CHANGES_PER_REQUEST)
        .map(|i| {
            let action = if i % 2 == 0 { "grant" } else { "withdraw" };
            json!({ "purpose": EMAIL, "action": action })
        })
        .collect();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..REQUESTS / 4 {
                    let r = app.send(
                        "POST",
                        "/v1/subjects/cus_long/consents",
                        Some(&me),
                        Some(json!({ "changes": changes })),
                    );
                    assert_eq!(r.status, 200, "{}", r.body);
                }
            });
        }
    });
    let records = CHANGES_PER_REQUEST * REQUESTS;

    // Without a limit a page holds the default; past the maximum a page is refused, not cut.
    let first = app.send("GET", "/v1/subjects/cus_long/history", Some(&me), None);
    assert_eq!(first.status, 200);
    assert_eq!(first.body["events"].as_array().unwrap().len(), 100);
    let events = first.body["total_events"].as_u64().unwrap();
    assert!(events > records as u64, "{events}");
    for bad in [
        "?limit=0",
        "?limit=501",
        "?limit=+5",
        "?after=01",
        "?after=x",
    ] {
        let r = app.send(
            "GET",
            &format!("/v1/subjects/cus_long/history{bad}"),
            Some(&me),
            None,
        );
        assert_eq!((r.status, r.code()), (400, "invalid_page"), "{bad}");
    }

    // Many customers' clients fetching at once hold a page each, not the whole history.
    std::thread::scope(|scope| {
        for _ in 0..32 {
            scope.spawn(|| {
                let r = app.send(
                    "GET",
                    "/v1/subjects/cus_long/history?limit=500",
                    Some(&me),
                    None,
                );
                assert_eq!(r.status, 200);
            });
        }
    });
    let peak = peak_memory_kib(&app);
    assert!(
        peak < 512 * 1024,
        "the server's peak memory was {peak} KiB after 32 fetches of a page"
    );

    // The pages together are the whole history, each verified, and complete.
    let pages = walk(&app, "/v1/subjects/cus_long/history", &me, 500, "events");
    assert_eq!(pages.len() as u64, events.div_ceil(500));
    let walked: usize = pages
        .iter()
        .map(|p| p["events"].as_array().unwrap().len())
        .sum();
    assert_eq!(walked as u64, events);
    for page in &pages {
        assert_eq!(page["total_events"].as_u64(), Some(events));
    }
    verify_pages(&pages, &app.log_key);

    // The consent records too, with what is in force on every page.
    let pages = walk(&app, "/v1/subjects/cus_long/consents", &me, 500, "history");
    let walked: usize = pages
        .iter()
        .map(|p| p["history"].as_array().unwrap().len())
        .sum();
    assert_eq!(walked, records);
    let in_force = &pages[0]["in_force"];
    assert!(pages.iter().all(|p| &p["in_force"] == in_force));
    let email = in_force
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purpose"] == EMAIL)
        .unwrap();
    assert_eq!(
        email["state"], "withdrawn",
        "each request ended on a withdrawal"
    );
}
