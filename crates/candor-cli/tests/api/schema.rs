//! Schemathesis (PyPI), a schema-driven fuzzer nobody here wrote, against the running server
//! and the OpenAPI document it serves: as the admin, a service and a customer, it must find no
//! server error, no answer that breaks the document (status, content type, body schema), no
//! request the document allows that is refused, and no request it forbids that is taken.

use std::process::Command;

use serde_json::json;

use crate::helpers::TestApp;

const OPS: &str = "essential.service.operations";

/// One caller's run: which routes (a regular expression over paths), with which token, and
/// which customer `{id}` names (the customer's own routes answer only for them).
struct Run<'a> {
    caller: &'a str,
    token: &'a str,
    paths: &'a str,
    customer: Option<&'a str>,
}

#[test]
#[cfg_attr(
    not(candor_schemathesis_tests),
    ignore = "needs schemathesis: set CANDOR_TEST_SCHEMATHESIS to its `st` (.ci/run does)"
)]
fn a_schema_driven_fuzzer_finds_nothing_the_document_does_not_say() {
    let st = std::env::var("CANDOR_TEST_SCHEMATHESIS")
        .expect("CANDOR_TEST_SCHEMATHESIS names schemathesis's `st`");
    let app = TestApp::spawn();
    let shop = app.service_key(
        "checkout",
        &[OPS, "marketing.communications.email", "analytics.reporting"],
        json!({ "can_mint_sessions": true }),
    );
    let r = app.send(
        "PUT",
        "/v1/subjects/cus_1/data",
        Some(&shop),
        Some(json!({ "purpose": OPS, "fields": { "user.name": "Ada" } })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let me = app.sign_in("cus_1");
    let runs = [
        Run {
            caller: "admin",
            token: &app.admin,
            paths: "^/(v1/keys|v1/operator|log/|healthz|openapi)",
            customer: None,
        },
        Run {
            caller: "service",
            token: &shop,
            paths: "^/v1/(access|lookup|subjects/\\{id\\}/(data|consents|sessions))$",
            customer: None,
        },
        Run {
            caller: "customer",
            token: &me,
            paths: "^/v1/(subjects/\\{id\\}|signin/)",
            customer: Some("cus_1"),
        },
    ];
    for run in runs {
        // A request the document allows may still find nothing there (404), a conflict (409),
        // the customer erased (410), or a caller the route does not admit (401, 403).
        let mut config = String::from(
            "[checks.positive_data_acceptance]\n\
             expected-statuses = [\"2xx\", \"401\", \"403\", \"404\", \"409\", \"410\"]\n",
        );
        if let Some(customer) = run.customer {
            config.push_str(&format!("\n[parameters]\n\"path.id\" = \"{customer}\"\n"));
        }
        let config_file = app
            .dir
            .path()
            .join(format!("schemathesis-{}.toml", run.caller));
        std::fs::write(&config_file, config).unwrap();
        let out = Command::new(&st)
            .arg("--config-file")
            .arg(&config_file)
            .args(["run", &format!("{}/openapi.json", app.base)])
            .args(["--url", &app.base])
            .args(["--include-path-regex", run.paths])
            .args(["--header", &format!("Authorization: Bearer {}", run.token)])
            .args(["--max-examples", "25", "--seed", "1", "--no-color"])
            .current_dir(app.dir.path())
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "as the {}: {report}\n{}",
            run.caller,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
