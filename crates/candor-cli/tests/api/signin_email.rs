//! Signing in by a one-time link that Candor mails, against a real SMTP server process
//! (Python's `aiosmtpd`, `interop/smtp/sink.py`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

const OPS: &str = "essential.service.operations";

/// The SMTP server, and the messages it received, in order.
struct SmtpSink {
    child: Child,
    port: u16,
    mail: mpsc::Receiver<Value>,
}

impl SmtpSink {
    fn start() -> SmtpSink {
        let python = std::env::var("CANDOR_TEST_SMTP_PYTHON")
            .expect("CANDOR_TEST_SMTP_PYTHON names a Python with aiosmtpd");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../interop/smtp/sink.py");
        let mut child = Command::new(python)
            .args(["-u", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the SMTP server");
        let (ready, port) = mpsc::channel();
        let (tx, mail) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(p) = line.strip_prefix("READY ") {
                    let _ = ready.send(p.parse::<u16>().unwrap());
                } else if let Some(m) = line.strip_prefix("MAIL ") {
                    let _ = tx.send(serde_json::from_str(m).unwrap());
                }
            }
        });
        // The timeout only bounds a broken start; readiness is the server's own announcement.
        let port = port
            .recv_timeout(Duration::from_secs(60))
            .expect("SMTP ready");
        SmtpSink { child, port, mail }
    }

    /// The next message, as (recipient, the link's token).
    fn next_link(&self, app: &TestApp) -> (String, String) {
        let m = self
            .mail
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no message arrived: {}", app.server_log()));
        let text = m["message"].as_str().unwrap();
        let token = text
            .split("token=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no link in {text}"))
            .to_owned();
        assert!(
            text.contains("http://privacy.test/signin/email?token="),
            "{text}"
        );
        (m["to"][0].as_str().unwrap().to_owned(), token)
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redeem(app: &TestApp, token: &str) -> Reply {
    app.send(
        "POST",
        "/v1/signin/email/redeem",
        None,
        Some(json!({ "token": token })),
    )
}

#[test]
#[cfg_attr(
    not(candor_smtp_tests),
    ignore = "needs aiosmtpd: set CANDOR_TEST_SMTP_PYTHON to a Python that has it (.ci/run does)"
)]
fn a_customer_signs_in_by_a_link_mailed_to_their_verified_address() {
    let smtp = SmtpSink::start();
    let mut app = TestApp::init();
    app.serve_args.extend([
        "--smtp-url".into(),
        format!("smtp://127.0.0.1:{}", smtp.port),
        "--mail-from".into(),
        "Shop Privacy <privacy@shop.example>".into(),
        "--public-url".into(),
        "http://privacy.test".into(),
    ]);
    app.start();
    let shop = app.service_key("checkout", &[OPS], json!({ "can_mint_sessions": true }));
    let r = app.send(
        "PUT",
        "/v1/subjects/cus_m/data",
        Some(&shop),
        Some(json!({ "purpose": OPS, "fields": { "user.name": "M" } })),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // Only the customer (or the admin) sets the address: not a service, nor its session.
    let body = json!({ "email": "mallory@attacker.example" });
    let delegated = app.session(&shop, "cus_m");
    for token in [&shop, &delegated] {
        let r = app.send(
            "PUT",
            "/v1/subjects/cus_m/signin-email",
            Some(token),
            Some(body.clone()),
        );
        assert_eq!(r.status, 403, "{}", r.body);
    }

    // An unverified address gets no link; the customer's own setting of it sends one that
    // verifies it.
    let me = app.sign_in("cus_m");
    let r = app.send(
        "PUT",
        "/v1/subjects/cus_m/signin-email",
        Some(&me),
        Some(json!({ "email": "M@Example.org" })),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let (to, verify) = smtp.next_link(&app);
    assert_eq!(to, "m@example.org");
    let ask = |email: &str| {
        let r = app.send(
            "POST",
            "/v1/signin/email",
            None,
            Some(json!({ "email": email })),
        );
        assert_eq!(r.status, 202, "{}", r.body);
        r.body
    };
    let r = redeem(&app, &verify);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["subject"], "cus_m");
    assert_eq!(
        redeem(&app, &verify).code(),
        "signin_failed",
        "a link works once"
    );

    // Asking for an address nobody signs in with looks the same and mails nothing: the next
    // message is the one for the customer's own request.
    let unknown = ask("nobody@example.org");
    let known = ask("m@example.org");
    assert_eq!(unknown, known);
    let (to, link) = smtp.next_link(&app);
    assert_eq!(to, "m@example.org");
    let r = redeem(&app, &link);
    assert_eq!(r.status, 200, "{}", r.body);
    let session = r.body["token"].as_str().unwrap().to_owned();
    assert_eq!(redeem(&app, "csl_made_up").code(), "signin_failed");

    // The customer's history tells them every step, and who took it.
    let history = app.send("GET", "/v1/subjects/cus_m/history", Some(&session), None);
    let steps: Vec<String> = history.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let ev = &e["event"];
            format!(
                "{} {} {}",
                ev["type"].as_str().unwrap(),
                ev["actor"]["kind"].as_str().unwrap(),
                ev["method"]
                    .as_str()
                    .or(ev["purpose"].as_str())
                    .unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            "collected service essential.service.operations",
            "session_started service delegated",
            // The service, and its session, tried to set the address.
            "attempt_refused service ",
            "attempt_refused delegate ",
            "session_started subject oidc",
            "signin_email_set subject ",
            "signin_link_sent candor verify_address",
            "session_started subject email_link",
            "signin_link_sent candor sign_in",
            "session_started subject email_link",
        ]
    );
    // Neither the links nor the address reach the server's log (it runs at debug here).
    let log = app.server_log();
    for secret in [verify.as_str(), link.as_str(), "m@example.org"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
    // Nothing of the address is in the database in the clear.
    let bytes = app.database_bytes();
    assert!(
        !bytes.windows(13).any(|w| w == b"m@example.org"),
        "the address is stored sealed"
    );
}
