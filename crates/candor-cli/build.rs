//! Decides, as the tests are built, which tests that need something outside this repository can
//! run, so that cargo's own summary shows the others as ignored, with the reason:
//! - the PostgreSQL and cluster tests, when `CANDOR_TEST_POSTGRES` names a server;
//! - the Go interop test, when `CANDOR_REQUIRE_INTEROP` says Go and `golang.org/x/mod` are there
//!   (it then fails, never skips, if they are not);
//! - the email sign-in test, when `CANDOR_TEST_SMTP_PYTHON` names a Python with `aiosmtpd`
//!   (`.ci/run` makes that venv from `interop/smtp/requirements.txt`);
//! - the schema-driven fuzzing test, when `CANDOR_TEST_SCHEMATHESIS` names schemathesis's `st`
//!   (`.ci/run` installs it from `interop/schemathesis/requirements.txt`).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(candor_postgres_tests)");
    println!("cargo::rustc-check-cfg=cfg(candor_go_interop)");
    println!("cargo::rerun-if-env-changed=CANDOR_TEST_POSTGRES");
    println!("cargo::rerun-if-env-changed=CANDOR_REQUIRE_INTEROP");
    println!("cargo::rustc-check-cfg=cfg(candor_smtp_tests)");
    println!("cargo::rerun-if-env-changed=CANDOR_TEST_SMTP_PYTHON");
    println!("cargo::rustc-check-cfg=cfg(candor_schemathesis_tests)");
    println!("cargo::rerun-if-env-changed=CANDOR_TEST_SCHEMATHESIS");
    if std::env::var_os("CANDOR_TEST_SCHEMATHESIS").is_some() {
        println!("cargo::rustc-cfg=candor_schemathesis_tests");
    }
    if std::env::var_os("CANDOR_TEST_SMTP_PYTHON").is_some() {
        println!("cargo::rustc-cfg=candor_smtp_tests");
    }
    if std::env::var_os("CANDOR_TEST_POSTGRES").is_some() {
        println!("cargo::rustc-cfg=candor_postgres_tests");
    }
    if std::env::var_os("CANDOR_REQUIRE_INTEROP").is_some() {
        println!("cargo::rustc-cfg=candor_go_interop");
    }
}
