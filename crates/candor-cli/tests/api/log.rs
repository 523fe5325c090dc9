//! The log at public-log grade: tiles, receipts, `candor verify`, `candor fsck`, an independent
//! Go verifier, and SIGKILL under load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use candor_log::tile::decode_entry_bundle;
use candor_log::{Checkpoint, Hash, NoteSigner, NoteVerifier};
use serde_json::json;

use crate::helpers::*;

const OPS: &str = "essential.service.operations";

/// Collects one field for each of `n` customers; returns their leaf indexes.
fn collect_many(app: &TestApp, shop: &str, prefix: &str, n: usize) -> Vec<u64> {
    (0..n)
        .map(|i| {
            let r = app.send(
                "PUT",
                &format!("/v1/subjects/{prefix}{i}/data"),
                Some(shop),
                Some(json!({ "purpose": OPS, "fields": { "user.name": format!("N{i}") } })),
            );
            assert_eq!(r.status, 200, "{}", r.body);
            r.body["leaf_index"].as_u64().unwrap()
        })
        .collect()
}

fn checkpoint(app: &TestApp) -> (String, Checkpoint) {
    let (status, _, body) = app.get_bytes("/log/checkpoint");
    assert_eq!(status, 200);
    let note = String::from_utf8(body).unwrap();
    let cp = Checkpoint::open(&note, &NoteVerifier::parse(&app.log_key).unwrap()).unwrap();
    (note, cp)
}

#[test]
fn tiles_follow_the_spec_and_are_immutable() {
    let app = TestApp::spawn();
    let shop = app.service_key("checkout", &[OPS], json!({ "can_mint_sessions": true }));
    // The operator log holds the two keys' creation and the first key epoch's start; the
    // customer signs in last, so the sign-in is the 300th entry.
    collect_many(&app, &shop, "cus_", 296);
    let me = app.sign_in("cus_260");
    let (_, cp) = checkpoint(&app);
    assert_eq!(cp.size, 300);

    let (status, headers, full) = app.get_bytes("/log/tile/0/000");
    assert_eq!(status, 200);
    assert_eq!(full.len(), 256 * 32);
    assert_eq!(
        headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let (_, again, cached) = app.get_bytes("/log/tile/0/000");
    assert_eq!(
        (cached, &again["cache-control"]),
        (full.clone(), &headers["cache-control"]),
        "a cached full tile is the same bytes"
    );
    let (status, _, partial) = app.get_bytes("/log/tile/0/001.p/44");
    assert_eq!((status, partial.len()), (200, 44 * 32));
    let (status, _, narrower) = app.get_bytes("/log/tile/0/001.p/10");
    assert_eq!(narrower[..], partial[..10 * 32], "{status}");
    let (status, _, level1) = app.get_bytes("/log/tile/1/000.p/1");
    assert_eq!((status, level1.len()), (200, 32));

    // The customer's history commitments are the entries at their indexes.
    let history = app.send("GET", "/v1/subjects/cus_260/history", Some(&me), None);
    let event = &history.body["events"][0];
    let index = event["leaf_index"].as_u64().unwrap();
    let (_, _, bundle) = app.get_bytes("/log/tile/entries/001.p/44");
    let entries = decode_entry_bundle(&bundle).unwrap();
    assert_eq!(entries.len(), 44);
    assert_eq!(
        entries[(index - 256) as usize],
        b64(&event["commitment"]),
        "bundles hold the 32-byte commitments, never bodies"
    );

    for (path, status, code) in [
        ("/log/tile/0/001", 404, "tile_not_found"),
        ("/log/tile/0/001.p/45", 404, "tile_not_found"),
        ("/log/tile/1/000", 404, "tile_not_found"),
        ("/log/tile/0/1", 400, "invalid_tile_path"),
        ("/log/tile/0/x000/001", 400, "invalid_tile_path"),
        ("/log/tile/0/000.p/256", 400, "invalid_tile_path"),
        ("/log/tile/entries/001.p/0", 400, "invalid_tile_path"),
    ] {
        let r = app.send("GET", path, None, None);
        assert_eq!((r.status, r.code()), (status, code), "{path}");
    }
}

#[test]
fn verify_checks_receipts_events_and_growth_and_catches_a_fork() {
    let app = TestApp::spawn();
    let shop = app.service_key("checkout", &[OPS], json!({ "can_mint_sessions": true }));
    collect_many(&app, &shop, "cus_", 20);
    let work = app.dir.path();
    let tiles = format!("{}/log", app.base);
    let state = work.join("state");
    let state_s = state.to_str().unwrap();

    let (ok, out) = app.candor(&[
        "verify",
        "--tiles",
        &tiles,
        "--key",
        &app.log_key,
        "--state",
        state_s,
        "--all-entries",
    ]);
    assert!(ok, "{out}");
    let entries = app.tree_size();
    assert!(
        out.contains(&format!("all {entries} entries rebuild")),
        "{out}"
    );

    // A customer's receipt, event and nonce, saved as files and checked offline.
    let me = app.sign_in("cus_3");
    let history = app.send("GET", "/v1/subjects/cus_3/history", Some(&me), None);
    let event = &history.body["events"][0];
    std::fs::write(
        work.join("r.tlog-proof"),
        event["receipt"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(
        work.join("event.json"),
        event["canonical_event"].as_str().unwrap(),
    )
    .unwrap();
    let receipt = work.join("r.tlog-proof");
    let event_file = work.join("event.json");
    collect_many(&app, &shop, "more_", 5);
    let nonce = event["nonce"].as_str().unwrap();
    let with_event = |event_file: &std::path::Path| {
        let event_file = event_file.to_str().unwrap();
        app.candor(&[
            "verify",
            "--tiles",
            &tiles,
            "--key",
            &app.log_key,
            "--state",
            state_s,
            "--receipt",
            receipt.to_str().unwrap(),
            "--event",
            event_file,
            "--nonce",
            nonce,
        ])
    };
    let (ok, out) = with_event(&event_file);
    assert!(ok, "{out}");
    // The sign-in and five more collections since.
    let (signed_in, now) = (entries + 1, entries + 6);
    assert!(
        out.contains(&format!("grew from {entries} to {now}")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "its tree of {signed_in} is a prefix of the log's {now}"
        )),
        "{out}"
    );

    // The same receipt with an event the customer was not shown.
    let forged = work.join("forged.json");
    let text = event["canonical_event"].as_str().unwrap();
    std::fs::write(&forged, text.replace("cus_3", "cus_4")).unwrap();
    let (ok, out) = with_event(&forged);
    assert!(!ok && out.contains("FAIL  entries"), "{out}");

    // A log that signs a different tree at a size it already published has forked: the state
    // file catches it. The fork is made with the log's own key, as a misbehaving operator would.
    let skey = std::fs::read_to_string(app.home().join("log.key")).unwrap();
    let signer = NoteSigner::parse(skey.trim()).unwrap();
    let fork = Checkpoint {
        origin: signer.name().to_owned(),
        size: 22,
        root: Hash([7; 32]),
    };
    std::fs::write(&state, signer.sign(&fork.to_text()).unwrap()).unwrap();
    let (ok, out) = app.candor(&[
        "verify",
        "--tiles",
        &tiles,
        "--key",
        &app.log_key,
        "--state",
        state_s,
    ]);
    assert!(!ok && out.contains("FAIL  consistency"), "{out}");
    // A failed run leaves the reference checkpoint where it was.
    assert!(std::fs::read_to_string(&state).unwrap().contains("\n22\n"));
}

/// Go's golang.org/x/mod/sumdb/tlog and sumdb/note, which nobody here wrote, check the tiles,
/// every entry, the receipts and the consistency proofs of a running Candor.
#[test]
#[cfg_attr(
    not(candor_go_interop),
    ignore = "needs Go and golang.org/x/mod (Debian's golang-go, golang-golang-x-mod-dev): set CANDOR_REQUIRE_INTEROP=1 to run it (.ci/run does)"
)]
fn an_independent_go_verifier_accepts_the_log() {
    let go_path = "/usr/share/gocode";
    let have_go = std::process::Command::new("go")
        .arg("version")
        .output()
        .is_ok()
        && std::path::Path::new(go_path)
            .join("src/golang.org/x/mod/sumdb/tlog")
            .exists();
    assert!(
        have_go,
        "CANDOR_REQUIRE_INTEROP is set but Go or golang.org/x/mod is missing"
    );
    let app = TestApp::spawn();
    let shop = app.service_key("checkout", &[OPS], json!({}));
    collect_many(&app, &shop, "cus_", 300);
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../../interop/tlogcheck");
    let bin = app.dir.path().join("tlogcheck");
    let build = std::process::Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(src)
        .env("GO111MODULE", "off")
        .env("GOPATH", go_path)
        .env("GOCACHE", app.dir.path().join("gocache"))
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let run = std::process::Command::new(&bin)
        .arg(format!("{}/log", app.base))
        .arg(&app.log_key)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{out}");
    assert!(out.contains("4 passed, 0 failed"), "{out}");
}

#[test]
fn fsck_finds_a_changed_byte_anywhere_in_the_log() {
    let mut app = TestApp::spawn();
    let shop = app.service_key("checkout", &[OPS], json!({}));
    collect_many(&app, &shop, "cus_", 40);
    let entries = app.tree_size();
    app.kill();
    let home = app.home();
    let dir = home.to_str().unwrap();
    let (ok, out) = app.candor(&["fsck", "--dir", dir]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("{entries} entries rehashed")),
        "{out}"
    );

    let db = rusqlite::Connection::open(home.join("candor.db")).unwrap();
    let some_label: Vec<u8> = db
        .query_row("SELECT label FROM subject_logs LIMIT 1", [], |r| r.get(0))
        .unwrap();
    use rusqlite::types::Value::{Blob, Integer};
    // Flip one bit of a commitment, of an interior tree hash, of the checkpoint's root, in turn.
    for (table, column, key, rowid, expect) in [
        (
            "events",
            "commitment",
            "leaf_index",
            Integer(17),
            "the entry of leaf 17",
        ),
        (
            "tree_hashes",
            "hash",
            "idx",
            Integer(30),
            "stored position 30 (level 4, index 0)",
        ),
        ("checkpoint", "note", "id", Integer(1), "latest checkpoint"),
        (
            "subject_logs",
            "peaks",
            "label",
            Blob(some_label),
            "directory differs",
        ),
    ] {
        let select = format!("SELECT {column} FROM {table} WHERE {key} = ?1");
        let update = format!("UPDATE {table} SET {column} = ?2 WHERE {key} = ?1");
        let original: rusqlite::types::Value =
            db.query_row(&select, [&rowid], |r| r.get(0)).unwrap();
        let changed = match &original {
            rusqlite::types::Value::Blob(b) => {
                let mut b = b.clone();
                b[5] ^= 1;
                rusqlite::types::Value::Blob(b)
            }
            rusqlite::types::Value::Text(t) => {
                // The root is the third line of the note: flip one bit of it.
                let mut lines: Vec<String> = t.split('\n').map(str::to_owned).collect();
                let mut root = b64(&json!(lines[2]));
                root[5] ^= 1;
                lines[2] = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, root);
                rusqlite::types::Value::Text(lines.join("\n"))
            }
            other => panic!("unexpected {other:?}"),
        };
        db.execute(&update, rusqlite::params![&rowid, changed])
            .unwrap();
        let (ok, out) = app.candor(&["fsck", "--dir", dir]);
        assert!(!ok, "fsck missed a change in {table}: {out}");
        assert!(out.contains(expect), "{table}: {out}");
        db.execute(&update, rusqlite::params![&rowid, original])
            .unwrap();
    }
    let (ok, out) = app.candor(&["fsck", "--dir", dir]);
    assert!(ok, "restored: {out}");
}

/// SIGKILL at a pseudo-random point under concurrent load, many times. After each restart every
/// acknowledged event is in the log, every checkpoint is consistent with all earlier ones, and
/// fsck passes.
#[test]
fn sigkill_under_load_loses_no_acknowledged_event() {
    const ROUNDS: u64 = 8;
    const CLIENTS: usize = 4;
    let mut app = TestApp::spawn();
    let shop = app.service_key("checkout", &[OPS], json!({ "can_mint_sessions": true }));
    let key = NoteVerifier::parse(&app.log_key).unwrap();
    let mut seen: Vec<Checkpoint> = Vec::new();
    // A fixed LCG: the kill points vary between rounds but not between runs.
    let mut seed: u64 = 0x5eed;
    for round in 0..ROUNDS {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let kill_after = 10 + (seed >> 33) % 120;
        let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
        let count = Arc::new(AtomicU64::new(0));
        let (enough_tx, enough_rx) = mpsc::channel();
        std::thread::scope(|s| {
            for c in 0..CLIENTS {
                let (acked, count, enough_tx) = (acked.clone(), count.clone(), enough_tx.clone());
                let (base, shop) = (app.base.clone(), shop.clone());
                s.spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    for i in 0.. {
                        let subject = format!("r{round}_c{c}_{i}");
                        let sent = client
                            .put(format!("{base}/v1/subjects/{subject}/data"))
                            .bearer_auth(&shop)
                            .json(&json!({ "purpose": OPS, "fields": { "user.name": subject } }))
                            .send();
                        // Once the server is killed, requests fail: this client is done.
                        let Ok(resp) = sent else { break };
                        let Ok(body) = resp.json::<serde_json::Value>() else {
                            break;
                        };
                        let Some(leaf) = body["leaf_index"].as_u64() else {
                            break;
                        };
                        acked.lock().unwrap().push((subject, leaf));
                        if count.fetch_add(1, Ordering::SeqCst) + 1 == kill_after {
                            let _ = enough_tx.send(());
                        }
                    }
                });
            }
            enough_rx.recv().unwrap();
            app.kill();
        });

        let dir = app.home();
        let (ok, out) = app.candor(&["fsck", "--dir", dir.to_str().unwrap()]);
        assert!(ok, "round {round}: fsck after SIGKILL: {out}");
        app.start();

        let (_, cp) = checkpoint(&app);
        for old in &seen {
            assert_consistent(&app, old, &cp);
        }
        let acked = acked.lock().unwrap().clone();
        assert!(acked.len() as u64 >= kill_after);
        for (subject, leaf) in &acked {
            assert!(
                *leaf < cp.size,
                "round {round}: leaf {leaf} of {subject} lost"
            );
            let read = app.send(
                "POST",
                "/v1/access",
                Some(&shop),
                Some(json!({ "subject": subject, "purpose": OPS, "fields": ["user.name"] })),
            );
            assert_eq!(
                read.body["data"]["user.name"],
                subject.as_str(),
                "round {round}"
            );
        }
        // The log holds each acknowledged event's commitment where the server said it put it.
        let (subject, leaf) = &acked[acked.len() / 2];
        let me = app.sign_in(subject);
        let history = app.send(
            "GET",
            &format!("/v1/subjects/{subject}/history"),
            Some(&me),
            None,
        );
        let indexes: Vec<u64> = history.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["leaf_index"].as_u64().unwrap())
            .collect();
        assert!(
            indexes.contains(leaf),
            "round {round}: {indexes:?} lacks {leaf}"
        );
        verify_history(&history.body, &app.log_key);
        seen.push(Checkpoint::open(&checkpoint(&app).0, &key).unwrap());
    }
}

/// A `candor witness` process on port 0.
pub struct WitnessProc {
    pub url: String,
    pub vkey: String,
    child: std::process::Child,
}

impl WitnessProc {
    pub fn start(dir: &std::path::Path, name: &str, log_key: &str) -> WitnessProc {
        use std::io::BufRead;
        let mut child = std::process::Command::new(BIN)
            .args([
                "witness",
                "--name",
                name,
                "--log",
                log_key,
                "--listen",
                "127.0.0.1:0",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| {
                let rest = l.split("address=").nth(1)?;
                Some(rest.split_whitespace().next()?.to_owned())
            })
            .expect("witness announces its address");
        // Keep draining stderr so the witness never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let vkey = std::fs::read_to_string(dir.join("witness.vkey")).unwrap();
        WitnessProc {
            url: format!("http://{addr}"),
            vkey: vkey.trim().to_owned(),
            child,
        }
    }

    fn add_checkpoint(&self, body: String) -> (u16, String, String) {
        let resp = reqwest::blocking::Client::new()
            .post(format!("{}/add-checkpoint", self.url))
            .body(body)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        let ctype = resp.headers()["content-type"].to_str().unwrap().to_owned();
        (status, ctype, resp.text().unwrap())
    }
}

impl Drop for WitnessProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the published checkpoint reaches `size`: witnessing follows each commit on its own.
pub fn published_at_least(app: &TestApp, size: u64) -> (String, Checkpoint) {
    for _ in 0..3000 {
        // 404 until the first checkpoint is cosigned.
        if app.get_bytes("/log/checkpoint").0 == 200 {
            let (note, cp) = checkpoint(app);
            if cp.size >= size {
                return (note, cp);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("size {size} was never witnessed: {}", app.server_log());
}

#[test]
fn witnesses_cosign_consistent_checkpoints_and_refuse_a_fork() {
    let mut app = TestApp::init();
    let work = app.dir.path().to_owned();
    let w1 = WitnessProc::start(&work.join("w1"), "w1.example", &app.log_key);
    let w2 = WitnessProc::start(&work.join("w2"), "w2.example", &app.log_key);
    app.serve_args = vec![
        "--witness".into(),
        format!("{}={}", w1.url, w1.vkey),
        "--witness".into(),
        format!("{}={}", w2.url, w2.vkey),
        "--witness-quorum".into(),
        "2".into(),
    ];
    app.start();
    let shop = app.service_key("checkout", &[OPS], json!({ "can_mint_sessions": true }));
    let leaves = collect_many(&app, &shop, "cus_", 30);
    // The customer's sign-in is the leaf after the last collection.
    let me = app.sign_in("cus_29");
    let (note, cp) = published_at_least(&app, leaves[29] + 2);
    let cosigned = candor_log::verify_cosignatures(
        &note,
        &[
            candor_log::WitnessVerifier::parse(&w1.vkey).unwrap(),
            candor_log::WitnessVerifier::parse(&w2.vkey).unwrap(),
        ],
    )
    .unwrap();
    assert_eq!(cosigned.len(), 2, "{note}");

    // Customers see the cosigned checkpoint, and their receipts carry the cosignatures.
    let history = app.send("GET", "/v1/subjects/cus_29/history", Some(&me), None);
    verify_history(&history.body, &app.log_key);
    assert_eq!(history.body["events"].as_array().unwrap().len(), 2);
    assert_eq!(history.body["pending_events"], 0);
    let receipt = history.body["events"][0]["receipt"].as_str().unwrap();
    std::fs::write(work.join("r.tlog-proof"), receipt).unwrap();
    let tiles = format!("{}/log", app.base);
    let (ok, out) = app.candor(&[
        "verify",
        "--tiles",
        &tiles,
        "--key",
        &app.log_key,
        "--witness",
        &w1.vkey,
        "--witness",
        &w2.vkey,
        "--receipt",
        work.join("r.tlog-proof").to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("2 of 2 required"), "{out}");
    std::fs::write(work.join("history.json"), history.body.to_string()).unwrap();
    let (ok, out) = app.candor(&[
        "verify",
        "--history",
        work.join("history.json").to_str().unwrap(),
        "--key",
        &app.log_key,
        "--witness",
        &w1.vkey,
        "--witness",
        &w2.vkey,
    ]);
    assert!(ok && out.contains("exactly these 2 events"), "{out}");
    // A policy the published checkpoint does not meet fails.
    let stranger = candor_log::WitnessSigner::generate("w3.example").unwrap();
    let (ok, out) = app.candor(&[
        "verify",
        "--tiles",
        &tiles,
        "--key",
        &app.log_key,
        "--witness",
        &stranger.verifier().to_vkey(),
    ]);
    assert!(
        !ok && out.contains("FAIL  cosignatures: 0 of the 1"),
        "{out}"
    );

    // A fork: the log's own key signs a different tree of the size the witness cosigned.
    let skey = std::fs::read_to_string(app.home().join("log.key")).unwrap();
    let signer = NoteSigner::parse(skey.trim()).unwrap();
    let fork = signer
        .sign(
            &Checkpoint {
                origin: signer.name().to_owned(),
                size: cp.size,
                root: Hash([7; 32]),
            }
            .to_text(),
        )
        .unwrap();
    let (status, _, _) = w1.add_checkpoint(format!("old {}\n\n{fork}", cp.size));
    assert_eq!(status, 422, "a fork is refused");
    let (status, ctype, body) = w1.add_checkpoint(format!("old 1\n\n{fork}"));
    assert_eq!((status, ctype.as_str()), (409, "text/x.tlog.size"));
    assert!(body.trim().parse::<u64>().unwrap() >= cp.size, "{body}");
    let (status, _, _) = w1.add_checkpoint(format!(
        "old 0\n\n{}",
        fork.replace("\n\n\u{2014}", "\n\n\u{2014} x")
    ));
    assert!(status == 403 || status == 400, "{status}");
    let other = NoteSigner::generate("other.example/log").unwrap();
    let foreign = other
        .sign(
            &Checkpoint {
                origin: "other.example/log".into(),
                size: 1,
                root: Hash([1; 32]),
            }
            .to_text(),
        )
        .unwrap();
    let (status, _, _) = w1.add_checkpoint(format!("old 0\n\n{foreign}"));
    assert_eq!(status, 404, "an unknown log");

    // A restarted witness still knows what it cosigned: it will not start over from zero.
    drop(w1);
    let w1 = WitnessProc::start(&work.join("w1"), "w1.example", &app.log_key);
    let (status, _, body) = w1.add_checkpoint(format!("old 0\n\n{note}"));
    assert_eq!(status, 409);
    assert!(body.trim().parse::<u64>().unwrap() >= cp.size, "{body}");

    // Without a quorum nothing new is published: the customer is told an event awaits it.
    drop(w2);
    let r = app.send(
        "PUT",
        "/v1/subjects/cus_29/data",
        Some(&shop),
        Some(json!({ "purpose": OPS, "fields": { "user.name": "Later" } })),
    );
    assert_eq!(r.status, 200);
    let history = app.send("GET", "/v1/subjects/cus_29/history", Some(&me), None);
    assert_eq!(history.body["events"].as_array().unwrap().len(), 2);
    assert_eq!(history.body["pending_events"], 1);
    verify_history(&history.body, &app.log_key);
}

/// A history with an event left out fails the customer's completeness check, whether the proof
/// is left as it was or rebuilt to match the shortened list.
#[test]
fn a_history_missing_an_event_is_caught() {
    let app = TestApp::spawn();
    let shop = app.service_key("checkout", &[OPS], json!({ "can_mint_sessions": true }));
    collect_many(&app, &shop, "other_", 5);
    for _ in 0..3 {
        let r = app.send(
            "PUT",
            "/v1/subjects/cus_1/data",
            Some(&shop),
            Some(json!({ "purpose": OPS, "fields": { "user.name": "Ada" } })),
        );
        assert_eq!(r.status, 200);
    }
    let me = app.sign_in("cus_1");
    let history = app
        .send("GET", "/v1/subjects/cus_1/history", Some(&me), None)
        .body;
    check_completeness(&history).unwrap();
    // The customer's own tool agrees, offline.
    let saved = app.dir.path().join("history.json");
    let state = app.dir.path().join("history.state");
    // `verify --history`, with `--state` when `across_visits`.
    let check = |h: &serde_json::Value, across_visits: bool| {
        std::fs::write(&saved, h.to_string()).unwrap();
        let mut args = vec![
            "verify",
            "--history",
            saved.to_str().unwrap(),
            "--key",
            &app.log_key,
        ];
        if across_visits {
            args.extend(["--state", state.to_str().unwrap()]);
        }
        app.candor(&args)
    };
    let verify = |h: &serde_json::Value| check(h, false);
    let with_state = |h: &serde_json::Value| check(h, true);
    let (ok, out) = verify(&history);
    assert!(ok, "{out}");
    assert!(out.contains("exactly these 4 events"), "{out}");

    let mut shortened = history.clone();
    shortened["events"].as_array_mut().unwrap().remove(1);
    assert!(
        check_completeness(&shortened).is_err(),
        "same proof, one event fewer"
    );

    // Rebuild the customer's head over what is left: the directory no longer agrees.
    let left: Vec<Vec<u8>> = shortened["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| b64(&e["commitment"]))
        .collect();
    let mut f = candor_log::Frontier::default();
    for c in &left {
        f.append(c);
    }
    shortened["completeness"]["size"] = json!(left.len());
    shortened["completeness"]["root"] = json!(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        f.root().0
    ));
    let err = check_completeness(&shortened).unwrap_err();
    assert!(err.contains("directory"), "{err}");
    let (ok, out) = verify(&shortened);
    assert!(!ok && out.contains("FAIL  completeness"), "{out}");

    // Across visits: the events shown before must still come first.
    let (ok, out) = with_state(&history);
    assert!(ok && out.contains("now the reference"), "{out}");
    let r = app.send(
        "PUT",
        "/v1/subjects/cus_1/data",
        Some(&shop),
        Some(json!({ "purpose": OPS, "fields": { "user.name": "Ada" } })),
    );
    assert_eq!(r.status, 200);
    let later = app
        .send("GET", "/v1/subjects/cus_1/history", Some(&me), None)
        .body;
    let (ok, out) = with_state(&later);
    assert!(
        ok && out.contains("your 4 earlier events are still the first ones"),
        "{out}"
    );
    // A complete history that does not extend the one seen before (here, another customer's)
    // fails: earlier events cannot quietly leave.
    let other = app.sign_in("other_2");
    let theirs = app
        .send("GET", "/v1/subjects/other_2/history", Some(&other), None)
        .body;
    let (ok, out) = with_state(&theirs);
    assert!(!ok && out.contains("FAIL  history"), "{out}");
}

/// Histories read while the same customer's events are being written are always complete: the
/// directory and the events shown are taken from the same moment.
#[test]
fn histories_read_during_writes_stay_complete() {
    let app = TestApp::spawn();
    let shop = app.service_key("checkout", &[OPS], json!({ "can_mint_sessions": true }));
    collect_many(&app, &shop, "cus_", 1);
    let me = app.sign_in("cus_0");
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for i in 0..150 {
                let r = app.send(
                    "PUT",
                    "/v1/subjects/cus_0/data",
                    Some(&shop),
                    Some(json!({ "purpose": OPS, "fields": { "user.name": format!("N{i}") } })),
                );
                assert_eq!(r.status, 200);
            }
        });
        while !writer.is_finished() {
            // Each page against its own checkpoint, the pages together complete.
            app.whole_history("cus_0", &me);
        }
    });
}
