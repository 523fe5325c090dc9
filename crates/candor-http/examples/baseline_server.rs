//! The load benchmarks' baseline: an axum server that answers every request with fixed bytes (a
//! real Candor answer saved to a file), with no decision, no crypto, no log and no storage.
//!
//! `cargo run --release -p candor-http --example baseline_server -- ADDR BODY_FILE [CONTENT_TYPE]`

use axum::Router;
use axum::http::header;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(file)) = (args.next(), args.next()) else {
        eprintln!("usage: baseline_server ADDR BODY_FILE [CONTENT_TYPE]");
        std::process::exit(2);
    };
    let content_type = args.next().unwrap_or_else(|| "application/json".into());
    let body = axum::body::Bytes::from(std::fs::read(&file).expect("read body file"));
    let app = Router::new().fallback(move || {
        let (body, content_type) = (body.clone(), content_type.clone());
        async move { ([(header::CONTENT_TYPE, content_type)], body) }
    });
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
