//! The same Candor on PostgreSQL. Runs when `CANDOR_TEST_POSTGRES` named a server as the tests were
//! built, and is ignored otherwise, with the reason in cargo's summary (`.ci/run` sets it, so in
//! CI it always runs); each test gets a schema of its own, dropped afterwards.

use serde_json::json;

use crate::helpers::*;

const OPS: &str = "essential.service.operations";

/// The database arguments for a fresh schema, with a password in the URL that must never show.
pub struct Schema {
    pub url: String,
    name: String,
}

impl Schema {
    pub fn new(test: &str) -> Schema {
        let url = std::env::var("CANDOR_TEST_POSTGRES")
            .unwrap_or_else(|_| panic!("{test} needs CANDOR_TEST_POSTGRES, set when it was built"));
        // The local server trusts the connection; the password is there to be kept out of logs.
        let url = url.replacen(
            "postgres://postgres@",
            "postgres://postgres:pw-must-not-leak@",
            1,
        );
        let name = format!("candor_api_{}_{test}", std::process::id());
        Schema { url, name }
    }

    pub fn args(&self) -> Vec<String> {
        vec![
            "--database".into(),
            self.url.clone(),
            "--db-schema".into(),
            self.name.clone(),
            // A SIGKILLed server's claim must lapse before the restart can sequence.
            "--sequencer-lease-ms".into(),
            "1000".into(),
        ]
    }
}

impl Schema {
    /// Runs `candor COMMAND --dir HOME` on this schema; returns whether it succeeded and what it
    /// printed.
    pub fn candor(&self, app: &TestApp, command: &str) -> (bool, String) {
        let home = app.home().display().to_string();
        let mut args = vec![command.to_owned(), "--dir".into(), home];
        args.extend(self.args());
        app.candor(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

#[test]
#[cfg_attr(
    not(candor_postgres_tests),
    ignore = "needs PostgreSQL: set CANDOR_TEST_POSTGRES to a server URL (.ci/run does)"
)]
fn candor_on_postgres_keeps_every_promise_across_a_sigkill() {
    let schema = Schema::new("story");
    let mut app = TestApp::init_with(&schema.args());
    app.start();
    let shop = app.service_key("checkout", &[OPS], json!({ "can_mint_sessions": true }));
    for i in 0..30 {
        let r = app.send(
            "PUT",
            &format!("/v1/subjects/cus_{i}/data"),
            Some(&shop),
            Some(json!({ "purpose": OPS, "fields": { "user.name": format!("N{i}") } })),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let read = app.send(
        "POST",
        "/v1/access",
        Some(&shop),
        Some(json!({ "subject": "cus_7", "purpose": OPS, "fields": ["user.name"] })),
    );
    assert_eq!(read.body["data"]["user.name"], "N7");
    let size = app.tree_size();
    assert!(
        !app.home().join("candor.db").exists(),
        "the data went to PostgreSQL"
    );

    app.restart();
    assert_eq!(
        app.tree_size(),
        size,
        "every acknowledged event survived SIGKILL"
    );
    let me = app.sign_in("cus_7");
    let history = app.send("GET", "/v1/subjects/cus_7/history", Some(&me), None);
    verify_history(&history.body, &app.log_key);
    // Two events and the sign-in.
    assert_eq!(history.body["events"].as_array().unwrap().len(), 3);

    let r = app.send("DELETE", "/v1/subjects/cus_7", Some(&me), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let gone = app.send(
        "POST",
        "/v1/access",
        Some(&shop),
        Some(json!({ "subject": "cus_7", "purpose": OPS, "fields": ["user.name"] })),
    );
    assert_eq!(gone.code(), "subject_erased");

    app.kill();
    let (ok, out) = schema.candor(&app, "fsck");
    assert!(ok, "{out}");
    let (ok, out) = schema.candor(&app, "migrate");
    assert!(ok && out.contains("up to date"), "{out}");

    // The URL's password reached neither the server's debug log nor the help text.
    assert!(!app.server_log().contains("pw-must-not-leak"));
    let help = std::process::Command::new(BIN)
        .args(["serve", "--help"])
        .env("CANDOR_DATABASE", &schema.url)
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(!String::from_utf8_lossy(&help.stdout).contains("pw-must-not-leak"));
}
