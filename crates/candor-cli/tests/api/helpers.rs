//! Starts the real `candor` binary on a fresh directory and talks to it over HTTP.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use candor_log::{Checkpoint, Hash, NoteVerifier, verify_inclusion};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::idp::{AUDIENCE, TestIdp};

pub const BIN: &str = env!("CARGO_BIN_EXE_candor");

pub struct TestApp {
    pub base: String,
    pub dir: tempfile::TempDir,
    pub admin: String,
    pub log_key: String,
    client: reqwest::blocking::Client,
    child: Option<Child>,
    /// Extra arguments for `candor serve`.
    pub serve_args: Vec<String>,
    /// The business's identity provider, which customers sign in through.
    pub idp: Arc<TestIdp>,
    // Everything the server wrote to stderr, across restarts.
    log: Arc<Mutex<String>>,
}

/// A parsed response.
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl TestApp {
    /// `candor init --json` then `candor serve` on port 0.
    pub fn spawn() -> TestApp {
        let mut app = TestApp::init();
        app.start();
        app
    }

    /// `candor init --json` only; set `serve_args`, then `start`.
    pub fn init() -> TestApp {
        TestApp::init_with(&[])
    }

    /// `candor init --json` with extra arguments (the database), which `serve` is given too.
    pub fn init_with(extra: &[String]) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(BIN)
            .args([
                "init",
                "--json",
                "--origin",
                "test.candor.example/log",
                "--dir",
            ])
            .arg(dir.path().join("home"))
            .args(extra)
            .env_remove("CANDOR_ROOT_KEY")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let created: Value = serde_json::from_slice(&out.stdout).unwrap();
        TestApp {
            base: String::new(),
            admin: created["admin_key"].as_str().unwrap().to_owned(),
            log_key: created["log_public_key"].as_str().unwrap().to_owned(),
            dir,
            client: reqwest::blocking::Client::new(),
            child: None,
            serve_args: extra.to_vec(),
            idp: Arc::new(TestIdp::start()),
            log: Arc::new(Mutex::new(String::new())),
        }
    }

    /// Another node of the same deployment: a copy of this home (its keys and data map, as
    /// each machine of a cluster has), served with the same arguments; not started.
    pub fn node(&self) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("home")).unwrap();
        for file in std::fs::read_dir(self.home()).unwrap() {
            let file = file.unwrap();
            std::fs::copy(file.path(), dir.path().join("home").join(file.file_name())).unwrap();
        }
        TestApp {
            base: String::new(),
            admin: self.admin.clone(),
            log_key: self.log_key.clone(),
            dir,
            client: reqwest::blocking::Client::new(),
            child: None,
            serve_args: self.serve_args.clone(),
            idp: self.idp.clone(),
            log: Arc::new(Mutex::new(String::new())),
        }
    }

    /// Whether this node says it sequences the log.
    pub fn is_sequencer(&self) -> bool {
        self.send("GET", "/healthz", None, None).body["sequencer"]
            .as_bool()
            .unwrap()
    }

    /// The customer's whole history, walked page by page, each page verified and the pages
    /// together checked complete: one value with every event, and the last page's checkpoint
    /// and completeness proof.
    pub fn whole_history(&self, subject: &str, token: &str) -> Value {
        self.whole_log(&format!("/v1/subjects/{subject}/history"), token)
    }

    /// As [`TestApp::whole_history`], for any history route (the operator log's too).
    pub fn whole_log(&self, route: &str, token: &str) -> Value {
        let mut pages: Vec<Value> = Vec::new();
        loop {
            let after = pages
                .last()
                .map(|p| format!("&after={}", p["next"].as_u64().unwrap()))
                .unwrap_or_default();
            let path = format!("{route}?limit=500{after}");
            let r = self.send("GET", &path, Some(token), None);
            assert_eq!(r.status, 200, "{}", r.body);
            let last = r.body["next"].is_null();
            pages.push(r.body);
            if last {
                break;
            }
        }
        verify_pages(&pages, &self.log_key);
        let mut whole = pages.last().unwrap().clone();
        whole["events"] = Value::Array(
            pages
                .iter()
                .flat_map(|p| p["events"].as_array().unwrap().clone())
                .collect(),
        );
        whole
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("started").id()
    }

    pub fn home(&self) -> std::path::PathBuf {
        self.dir.path().join("home")
    }

    pub fn start(&mut self) {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--dir"])
            .arg(self.home())
            .args(&self.serve_args)
            .args([
                "--oidc-issuer",
                &self.idp.issuer,
                "--oidc-audience",
                AUDIENCE,
            ])
            .env("CANDOR_LOG", "debug")
            .env_remove("CANDOR_ROOT_KEY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("address=").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send(addr);
                }
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        // The timeout only bounds a broken start; readiness is the server's own announcement.
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("server did not start: {}", self.server_log()));
        self.base = format!("http://{addr}");
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown, no flush; only what was durable survives.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, as an orchestrator stops a node: it drains, releases the log, and exits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let term = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(term.success());
            assert!(child.wait().unwrap().success(), "{}", self.server_log());
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.start();
    }

    pub fn server_log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.send_with(method, path, token, body, &[])
    }

    pub fn send_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply { status, body }
    }

    pub fn raw(
        &self,
        method: &str,
        path: &str,
        token: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        let body = serde_json::from_str(&resp.text().unwrap()).unwrap_or(Value::Null);
        Reply { status, body }
    }

    /// A service key bound to `purposes`.
    pub fn service_key(&self, name: &str, purposes: &[&str], extra: Value) -> String {
        let mut spec = json!({ "name": name, "purposes": purposes });
        if let Value::Object(more) = extra {
            spec.as_object_mut().unwrap().extend(more);
        }
        let r = self.send("POST", "/v1/keys", Some(&self.admin), Some(spec));
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["token"].as_str().unwrap().to_owned()
    }

    /// The customer signs in through the business's identity provider: a session of their own.
    pub fn sign_in(&self, subject: &str) -> String {
        let r = self.sign_in_with(|nonce| self.idp.id_token(subject, nonce));
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["subject"], subject);
        r.body["token"].as_str().unwrap().to_owned()
    }

    /// Asks for a nonce and signs in with the ID token `token` makes for it.
    pub fn sign_in_with(&self, token: impl FnOnce(&str) -> String) -> Reply {
        let r = self.send("POST", "/v1/signin/oidc/nonce", None, None);
        assert_eq!(r.status, 200, "{}", r.body);
        let id_token = token(r.body["nonce"].as_str().unwrap());
        self.send(
            "POST",
            "/v1/signin/oidc",
            None,
            Some(json!({ "id_token": id_token })),
        )
    }

    /// A delegated session minted by a service that may mint sessions.
    pub fn session(&self, minter: &str, subject: &str) -> String {
        let r = self.send(
            "POST",
            &format!("/v1/subjects/{subject}/sessions"),
            Some(minter),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["token"].as_str().unwrap().to_owned()
    }

    /// A GET whose body is bytes, with the response's headers.
    pub fn get_bytes(&self, path: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.bytes().unwrap().to_vec())
    }

    /// Runs `candor ARGS`; returns whether it succeeded and what it printed.
    pub fn candor(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(BIN)
            .args(args)
            .env_remove("CANDOR_ROOT_KEY")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    pub fn tree_size(&self) -> u64 {
        self.send("GET", "/healthz", None, None).body["tree_size"]
            .as_u64()
            .unwrap()
    }

    /// Every byte of the database files, for plaintext scans.
    pub fn database_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for name in ["candor.db", "candor.db-wal", "candor.db-shm"] {
            if let Ok(bytes) = std::fs::read(self.home().join(name)) {
                all.extend(bytes);
            }
        }
        all
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn b64(s: &Value) -> Vec<u8> {
    B64.decode(s.as_str().unwrap()).unwrap()
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A checkpoint whose signature verified, as the client saw it.
pub struct Verified {
    pub size: u64,
    pub root: Hash,
}

/// Checks a history response the way a customer's client would: the checkpoint's signature, and
/// for every event that the commitment opens and the leaf is included. The commitment is
/// recomputed here from its definition, not with Candor's own function.
pub fn verify_history(history: &Value, log_key: &str) -> Verified {
    let verified = verify_events(history, log_key);
    check_completeness(history).expect("the history is complete");
    verified
}

/// Checks the pages of a history, each against its own checkpoint, and that together they are
/// complete by the last page's.
pub fn verify_pages(pages: &[Value], log_key: &str) -> Verified {
    let mut verified = None;
    for page in pages {
        verified = Some(verify_events(page, log_key));
    }
    let last = pages.last().expect("at least one page");
    assert!(last["next"].is_null(), "the last page ends the history");
    let mut whole = last.clone();
    whole["events"] = Value::Array(
        pages
            .iter()
            .flat_map(|p| p["events"].as_array().unwrap().clone())
            .collect(),
    );
    check_completeness(&whole).expect("the pages together are complete");
    verified.unwrap()
}

/// Checks a page of history: the checkpoint's signature, and every event's opening and
/// inclusion.
fn verify_events(history: &Value, log_key: &str) -> Verified {
    let key = NoteVerifier::parse(log_key).unwrap();
    let cp = Checkpoint::open(history["checkpoint"].as_str().unwrap(), &key).unwrap();
    assert_eq!(history["tree_size"].as_u64().unwrap(), cp.size);
    for e in history["events"].as_array().unwrap() {
        let nonce = b64(&e["nonce"]);
        let canonical = e["canonical_event"].as_str().unwrap();
        let mut h = Sha256::new();
        h.update(b"candor.event.commitment.v1\0");
        h.update(&nonce);
        h.update(canonical.as_bytes());
        let commitment: [u8; 32] = h.finalize().into();
        assert_eq!(
            commitment.to_vec(),
            b64(&e["commitment"]),
            "commitment opens"
        );
        let mut lh = Sha256::new();
        lh.update([0u8]);
        lh.update(commitment);
        let leaf = Hash(lh.finalize().into());
        assert_eq!(leaf.0.to_vec(), b64(&e["leaf_hash"]));
        let proof: Vec<Hash> = e["inclusion_proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| Hash::from_slice(&b64(p)).unwrap())
            .collect();
        verify_inclusion(
            e["leaf_index"].as_u64().unwrap(),
            cp.size,
            &leaf,
            &proof,
            &cp.root.0,
        )
        .expect("inclusion proof verifies");
        let parsed: Value = serde_json::from_str(canonical).unwrap();
        assert_eq!(
            parsed, e["event"],
            "readable event matches the committed bytes"
        );
    }
    Verified {
        size: cp.size,
        root: cp.root,
    }
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// RFC 6962 MTH, straight from the definition.
fn mth(leaves: &[Vec<u8>]) -> [u8; 32] {
    match leaves.len() {
        0 => sha256(&[]),
        1 => sha256(&[&[0], &leaves[0]]),
        n => {
            let k = 1 << (usize::BITS - 1 - (n - 1).leading_zeros());
            sha256(&[&[1], &mth(&leaves[..k]), &mth(&leaves[k..])])
        }
    }
}

/// What a customer checks to know the history shown is all of it, written from the definition in
/// the API documentation rather than with Candor's code: their tree over the shown commitments,
/// their leaf in the directory, the path up to the checkpoint's `candor-directory` line, and that
/// line's sum equal to the log's size.
pub fn check_completeness(history: &Value) -> Result<(), String> {
    let c = &history["completeness"];
    if c.is_null() {
        return Err("no completeness proof".into());
    }
    let events = history["events"].as_array().unwrap();
    let commitments: Vec<Vec<u8>> = events.iter().map(|e| b64(&e["commitment"])).collect();
    let size = c["size"].as_u64().unwrap();
    if size != commitments.len() as u64 {
        return Err(format!(
            "{} events shown, {size} attributed",
            commitments.len()
        ));
    }
    let root = mth(&commitments);
    if root.to_vec() != b64(&c["root"]) {
        return Err("the shown events do not make the attributed tree".into());
    }
    let label: [u8; 32] = b64(&c["label"]).try_into().unwrap();
    let mut sum = size;
    let mut hash = sha256(&[&[0], &label, &size.to_be_bytes(), &root]);
    let proof = c["proof"].as_array().unwrap();
    for (depth, sibling) in proof.iter().enumerate().rev() {
        let (s_sum, s_hash) = (sibling["sum"].as_u64().unwrap(), b64(&sibling["hash"]));
        let right = label[depth / 8] & (0x80 >> (depth % 8)) != 0;
        hash = if right {
            sha256(&[
                &[1],
                &s_sum.to_be_bytes(),
                &s_hash,
                &sum.to_be_bytes(),
                &hash,
            ])
        } else {
            sha256(&[
                &[1],
                &sum.to_be_bytes(),
                &hash,
                &s_sum.to_be_bytes(),
                &s_hash,
            ])
        };
        sum += s_sum;
    }
    let note = history["checkpoint"].as_str().unwrap();
    let line = note
        .lines()
        .find_map(|l| l.strip_prefix("candor-directory "))
        .ok_or("the checkpoint has no directory")?;
    let (line_sum, line_hash) = line.split_once(' ').unwrap();
    if format!("{sum} {}", B64.encode(hash)) != format!("{line_sum} {line_hash}") {
        return Err("the path does not reach the checkpoint's directory".into());
    }
    if sum != history["tree_size"].as_u64().unwrap() {
        return Err("the directory does not attribute every entry of the log".into());
    }
    Ok(())
}

/// Checks, with the proof `app` serves, that checkpoint `old` is a prefix of `new`.
pub fn assert_consistent(app: &TestApp, old: &Checkpoint, new: &Checkpoint) {
    let r = app.send(
        "GET",
        &format!("/log/consistency?from={}&to={}", old.size, new.size),
        None,
        None,
    );
    let proof: Vec<Hash> = r.body["proof"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.body))
        .iter()
        .map(|h| Hash::from_slice(&b64(h)).unwrap())
        .collect();
    candor_log::verify_consistency(old.size, new.size, &proof, &old.root.0, &new.root.0)
        .unwrap_or_else(|e| panic!("{} -> {}: {e}", old.size, new.size));
}
