//! The load benchmark's baseline: an axum endpoint that answers `POST /v1/access` with fixed
//! bytes (a real Candor answer saved to a file), with no decision, no crypto and no log.
//!
//! `cargo run --release -p candor-http --example baseline_server -- ADDR BODY_FILE`

use axum::Router;
use axum::http::header;
use axum::routing::post;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(file)) = (args.next(), args.next()) else {
        eprintln!("usage: baseline_server ADDR BODY_FILE");
        std::process::exit(2);
    };
    let body = axum::body::Bytes::from(std::fs::read(&file).expect("read body file"));
    let app = Router::new().route(
        "/v1/access",
        post(move || {
            let body = body.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
