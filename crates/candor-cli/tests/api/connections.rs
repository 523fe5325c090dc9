//! What a client can hold, and what the server says when a request's head is out of bounds;
//! spoken as raw HTTP/1.1 over TCP so nothing between the test and the server tidies it up.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::TestApp;

/// Long enough that only a server that never closes would reach it: a bound on a broken run,
/// not a measurement.
const GIVE_UP: Duration = Duration::from_secs(60);

fn connect(app: &TestApp) -> TcpStream {
    let stream = TcpStream::connect(app.base.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(GIVE_UP)).unwrap();
    stream
}

/// Reads one response to its end (the server closes, or Content-Length is reached).
fn read_response(stream: &mut TcpStream) -> (u16, String, Value) {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream
            .read(&mut chunk)
            .expect("the server neither answered nor closed");
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&bytes, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse::<usize>().unwrap());
            if length.is_some_and(|length| bytes.len() >= end + 4 + length) {
                break;
            }
        }
    }
    let end = find(&bytes, b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = serde_json::from_slice(&bytes[end + 4..]).unwrap_or(Value::Null);
    (status, head, body)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Sends `request` on a fresh connection and reads the answer.
fn exchange(app: &TestApp, request: &[u8]) -> (u16, String, Value) {
    let mut stream = connect(app);
    stream.write_all(request).unwrap();
    read_response(&mut stream)
}

/// Blocks until the server closes the connection, discarding anything it sends first.
fn wait_closed(stream: &mut TcpStream) {
    let mut sink = [0u8; 1024];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("the server kept an idle connection open: {e}"),
        }
    }
}

#[test]
fn out_of_bounds_heads_get_the_documented_json() {
    let app = TestApp::spawn();
    let documented = |(status, head, body): (u16, String, Value), want: u16, code: &str| {
        assert_eq!(status, want, "{head}\n{body}");
        assert!(
            head.to_lowercase()
                .contains("content-type: application/json"),
            "{head}"
        );
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    };

    let long_path = format!("/v1/subjects/{}/history", "a".repeat(9000));
    let request = format!("GET {long_path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    documented(exchange(&app, request.as_bytes()), 414, "uri_too_long");

    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(20 * 1024)
    );
    documented(exchange(&app, big.as_bytes()), 431, "headers_too_large");

    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET /healthz HTTP/1.1\r\nHost: t\r\n{many}Connection: close\r\n\r\n");
    documented(exchange(&app, many.as_bytes()), 431, "headers_too_large");

    for path in [
        "/v1/subjects/%FF/history",
        "/log/tile/0/%C3%28",
        "/nowhere/%FE",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        documented(exchange(&app, request.as_bytes()), 400, "invalid_path");
    }

    // A route's method fallback and an extractor's own rejection are JSON too.
    let request = b"PATCH /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    documented(exchange(&app, request), 405, "method_not_allowed");

    // The head is bounded, not refused: a request just inside the limits is served.
    let inside = format!(
        "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(8 * 1024)
    );
    assert_eq!(exchange(&app, inside.as_bytes()).0, 200);
}

#[test]
fn credentials_are_checked_before_the_body_is_read() {
    let app = TestApp::spawn();
    // The head promises a body that never comes; a bad token is refused at once all the same.
    let mut stream = connect(&app);
    stream
        .write_all(
            b"POST /v1/access HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer cnd_nope_nope\r\n\
              Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n",
        )
        .unwrap();
    let (status, _, body) = read_response(&mut stream);
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthenticated");
}

#[test]
fn idle_and_slow_clients_cannot_lock_others_out() {
    let mut app = TestApp::init();
    app.serve_args.extend(
        [
            "--max-connections",
            "4",
            "--header-timeout-secs",
            "1",
            "--body-timeout-secs",
            "1",
        ]
        .map(String::from),
    );
    app.start();

    // Twice the connection limit, idle: each is closed once it has waited its header deadline,
    // those past the limit once they are accepted.
    let mut idle: Vec<TcpStream> = (0..8).map(|_| connect(&app)).collect();
    // A head that trickles in and never ends.
    let mut trickling = connect(&app);
    trickling
        .write_all(b"GET /healthz HTTP/1.1\r\nHost")
        .unwrap();
    // A keep-alive client that goes quiet after one answered request.
    let mut quiet = connect(&app);
    quiet
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut quiet).0, 200);

    for stream in idle.iter_mut().chain([&mut trickling, &mut quiet]) {
        wait_closed(stream);
    }

    // A body that stops short of its length is answered 408 at its deadline, and the
    // connection is closed.
    let mut slow_body = connect(&app);
    slow_body
        .write_all(
            b"POST /v1/signin/email HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"email\":",
        )
        .unwrap();
    let (status, head, body) = read_response(&mut slow_body);
    assert_eq!(status, 408, "{head}\n{body}");
    assert_eq!(body["error"]["code"], "body_timeout");
    wait_closed(&mut slow_body);

    // And a new client is served.
    assert_eq!(app.send("GET", "/healthz", None, None).status, 200);
}
