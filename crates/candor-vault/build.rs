//! Decides, as the tests are built, whether the PostgreSQL tests can run, so that cargo's own
//! summary shows them as ignored, with the reason, where no server is configured.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(candor_postgres_tests)");
    println!("cargo::rerun-if-env-changed=CANDOR_TEST_POSTGRES");
    if std::env::var_os("CANDOR_TEST_POSTGRES").is_some() {
        println!("cargo::rustc-cfg=candor_postgres_tests");
    }
}
