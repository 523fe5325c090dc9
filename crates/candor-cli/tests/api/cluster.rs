//! Three Candor nodes on one PostgreSQL database: one sequences the log, the others hand it
//! their writes, and when it is killed another takes over without losing, duplicating or
//! reordering an acknowledged event. Runs when `CANDOR_TEST_POSTGRES` names a server.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};

use candor_log::{Checkpoint, NoteVerifier};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::postgres::Schema;

const OPS: &str = "essential.service.operations";
const MARKETING: &str = "marketing.communications.email";
const CLIENTS: usize = 6;

/// Three nodes of one deployment on `schema`, the first started first.
fn cluster(schema: &Schema) -> Vec<TestApp> {
    cluster_of(3, schema, |_| Vec::new())
}

/// `n` nodes of one deployment on `schema`, the first started first; `serve` also gets the
/// arguments `extra` makes from the first node before it starts.
fn cluster_of(
    n: usize,
    schema: &Schema,
    extra: impl FnOnce(&TestApp) -> Vec<String>,
) -> Vec<TestApp> {
    let mut args = schema.args();
    // Three nodes each, with tests running side by side, stay within the server's connections.
    args.extend(["--db-pool-size".into(), "4".into()]);
    let mut first = TestApp::init_with(&args);
    first
        .serve_args
        .extend(["--advertise-url".into(), "http://127.0.0.1:0".into()]);
    let more = extra(&first);
    first.serve_args.extend(more);
    first.start();
    let mut nodes = vec![first];
    for _ in 1..n {
        let mut node = nodes[0].node();
        node.start();
        nodes.push(node);
    }
    nodes
}

fn b64_text(bytes: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes)
}

fn checkpoint_at(base: &str, key: &NoteVerifier) -> Option<Checkpoint> {
    let text = reqwest::blocking::get(format!("{base}/log/checkpoint"))
        .ok()?
        .text()
        .ok()?;
    Some(Checkpoint::open(&text, key).expect("every served checkpoint verifies"))
}

#[test]
#[cfg_attr(
    not(candor_postgres_tests),
    ignore = "needs PostgreSQL: set CANDOR_TEST_POSTGRES to a server URL (.ci/run does)"
)]
fn consent_changed_on_one_node_is_in_force_on_every_node_at_once() {
    let schema = Schema::new("cluster_consent");
    let nodes = cluster(&schema);
    let [a, b, c] = &nodes[..] else {
        unreachable!()
    };
    assert_eq!(
        (a.is_sequencer(), b.is_sequencer(), c.is_sequencer()),
        (true, false, false),
        "the first node claimed the log; the others follow"
    );
    // Everything below is done through followers, so every write is handed over.
    let shop = b.service_key(
        "checkout",
        &[OPS, MARKETING],
        json!({ "can_mint_sessions": true }),
    );
    let put = c.send(
        "PUT",
        "/v1/subjects/cus_ada/data",
        Some(&shop),
        Some(json!({ "purpose": OPS, "fields": { "user.contact.email": "ada@example.org" } })),
    );
    assert_eq!(put.status, 200, "{}", put.body);
    // Sealed and encoded, this write is several times a client's body limit when handed over.
    let big = "x".repeat(15_000);
    let put = c.send(
        "PUT",
        "/v1/subjects/cus_big/data",
        Some(&shop),
        Some(json!({ "purpose": OPS, "fields": { "user.name": big,
            "user.contact.address": big, "user.behavior.purchase_history": big } })),
    );
    assert_eq!(put.status, 200, "{}", put.body);
    let ask = |node: &TestApp| {
        node.send(
            "POST",
            "/v1/access",
            Some(&shop),
            Some(json!({ "subject": "cus_ada", "purpose": MARKETING,
                         "fields": ["user.contact.email"] })),
        )
        .body["data"]
            .clone()
    };
    let ada = b.sign_in("cus_ada");
    let change = |node: &TestApp, action: &str| {
        let r = node.send(
            "POST",
            "/v1/subjects/cus_ada/consents",
            Some(&ada),
            Some(json!({ "changes": [{ "purpose": MARKETING, "action": action }] })),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    };
    for node in &nodes {
        assert_eq!(ask(node), json!({}), "no consent yet");
    }
    change(b, "grant");
    for node in &nodes {
        assert_eq!(
            ask(node),
            json!({ "user.contact.email": "ada@example.org" })
        );
    }
    change(c, "withdraw");
    for node in &nodes {
        assert_eq!(
            ask(node),
            json!({}),
            "a withdrawal binds every node at once"
        );
    }
    // A follower shows the customer every event, with proofs and completeness, at once.
    let history = c.send("GET", "/v1/subjects/cus_ada/history", Some(&ada), None);
    assert_eq!(history.status, 200, "{}", history.body);
    verify_history(&history.body, &a.log_key);
    check_completeness(&history.body).unwrap();
    // Eleven of the shop's and the customer's, and their sign-in.
    assert_eq!(history.body["events"].as_array().unwrap().len(), 12 + 1);
    assert_eq!(history.body["pending_events"], 0);
}

/// A rolling restart: the sequencer, stopped cleanly, gives the log up and a follower takes it
/// over without waiting for the lease to lapse; the old node comes back as a follower.
#[test]
#[cfg_attr(
    not(candor_postgres_tests),
    ignore = "needs PostgreSQL: set CANDOR_TEST_POSTGRES to a server URL (.ci/run does)"
)]
fn a_sequencer_stopped_cleanly_hands_the_log_over() {
    let schema = Schema::new("cluster_handover");
    let mut nodes = cluster_of(2, &schema, |_| Vec::new());
    let shop = nodes[1].service_key("checkout", &[OPS], json!({}));
    let put = |node: &TestApp, subject: &str| {
        node.send(
            "PUT",
            &format!("/v1/subjects/{subject}/data"),
            Some(&shop),
            Some(json!({ "purpose": OPS, "fields": { "user.name": subject } })),
        )
    };
    // The operator log already holds the keys' creation.
    let keys_logged = nodes[1].tree_size();
    assert_eq!(put(&nodes[1], "before").status, 200);
    nodes[0].stop();
    let after = put(&nodes[1], "after");
    assert_eq!(after.status, 200, "{}", after.body);
    assert!(nodes[1].is_sequencer());
    nodes[0].start();
    assert!(
        !nodes[0].is_sequencer(),
        "the old sequencer rejoins as a follower"
    );
    assert_eq!(put(&nodes[0], "again").status, 200);
    assert_eq!(nodes[0].tree_size(), keys_logged + 3);
}

/// Under a witness policy customers are shown cosigned checkpoints only, whose directories only
/// the sequencer (which sends them to the witnesses) holds; a follower asks it for the proof.
#[test]
#[cfg_attr(
    not(candor_postgres_tests),
    ignore = "needs PostgreSQL: set CANDOR_TEST_POSTGRES to a server URL (.ci/run does)"
)]
fn under_a_witness_policy_a_follower_proves_completeness_with_the_sequencer() {
    let schema = Schema::new("cluster_witness");
    let witness_home = tempfile::tempdir().unwrap();
    let mut witness = None;
    let nodes = cluster_of(2, &schema, |first| {
        let w = crate::log::WitnessProc::start(witness_home.path(), "w.example", &first.log_key);
        let arg = format!("{}={}", w.url, w.vkey);
        witness = Some(w);
        vec!["--witness".into(), arg]
    });
    let follower = &nodes[1];
    let shop = follower.service_key("checkout", &[OPS], json!({ "can_mint_sessions": true }));
    let put = follower.send(
        "PUT",
        "/v1/subjects/cus_w/data",
        Some(&shop),
        Some(json!({ "purpose": OPS, "fields": { "user.name": "W" } })),
    );
    assert_eq!(put.status, 200, "{}", put.body);
    let me = follower.sign_in("cus_w");
    // The sign-in is the leaf after the collection; wait until the witnesses cosigned both.
    let leaf = put.body["leaf_index"].as_u64().unwrap();
    crate::log::published_at_least(follower, leaf + 2);
    let history = follower.send("GET", "/v1/subjects/cus_w/history", Some(&me), None);
    assert_eq!(history.body["pending_events"], 0, "{}", history.body);
    assert!(history.body["completeness"].is_object(), "{}", history.body);
    verify_history(&history.body, &follower.log_key);
    check_completeness(&history.body).unwrap();
    drop(witness);
}

#[test]
#[cfg_attr(
    not(candor_postgres_tests),
    ignore = "needs PostgreSQL: set CANDOR_TEST_POSTGRES to a server URL (.ci/run does)"
)]
fn the_internal_route_takes_only_fresh_requests_signed_with_the_node_key() {
    let schema = Schema::new("cluster_auth");
    let nodes = cluster(&schema);
    let size = nodes[0].tree_size();
    let commitment = b64_text(&[7u8; 32]);
    let request = json!({ "v": 1, "requests": [{ "requires_active": null, "mutations": [],
        "entries": [{ "subject": "cus_x", "commitment": commitment, "sealed_body": "AQID" }] }] });
    let body = serde_json::to_vec(&request).unwrap();
    let client = reqwest::blocking::Client::new();
    let post = |auth: Option<&str>| {
        let mut r = client
            .post(format!("{}/internal/v1/log/commit", nodes[0].base))
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(auth) = auth {
            r = r.header("candor-node-auth", auth);
        }
        let resp = r.send().unwrap();
        (resp.status().as_u16(), resp.json::<Value>().unwrap())
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let forged = candor_crypto::RootKey::generate()
        .node_key()
        .authorize(now, &body);
    for auth in [None, Some(forged.as_str()), Some("1.AAAA.AAAA")] {
        let (status, reply) = post(auth);
        assert_eq!(
            (status, reply["error"]["code"].as_str()),
            (401, Some("unauthenticated"))
        );
    }
    // With the deployment's own root key, a request goes in once; its replay is refused.
    let root_text = std::fs::read_to_string(nodes[0].home().join("root.key")).unwrap();
    let key = candor_crypto::RootKey::from_base64(root_text.trim())
        .unwrap()
        .node_key();
    let stale = key.authorize(now - 3600, &body);
    assert_eq!(post(Some(&stale)).0, 401, "an old request is refused");
    let fresh = key.authorize(now, &body);
    let (status, reply) = post(Some(&fresh));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply,
        json!({ "v": 1, "outcomes": [{ "outcome": "committed", "leaves": [size] }] })
    );
    assert_eq!(post(Some(&fresh)).0, 401, "a replay is refused");
    // A follower does not sequence, so it takes no handed-over write.
    let on_follower = client
        .post(format!("{}/internal/v1/log/commit", nodes[1].base))
        .header("candor-node-auth", key.authorize(now, &body))
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(on_follower.status().as_u16(), 503);
    assert_eq!(nodes[0].tree_size(), size + 1);
}

/// Writes through all three nodes while the sequencer is SIGKILLed; afterwards every
/// acknowledged event is in the log exactly once, where it was said to be, every checkpoint
/// seen is consistent with the last, and the whole log verifies.
#[test]
#[cfg_attr(
    not(candor_postgres_tests),
    ignore = "needs PostgreSQL: set CANDOR_TEST_POSTGRES to a server URL (.ci/run does)"
)]
fn three_nodes_lose_nothing_when_the_sequencer_is_killed_mid_load() {
    let schema = Schema::new("cluster_sigkill");
    let mut nodes = cluster(&schema);
    let key = NoteVerifier::parse(&nodes[0].log_key).unwrap();
    let shop = nodes[1].service_key("checkout", &[OPS], json!({ "can_mint_sessions": true }));
    let bases: Arc<RwLock<Vec<String>>> =
        Arc::new(RwLock::new(nodes.iter().map(|n| n.base.clone()).collect()));
    // (subject, leaf) for every write acknowledged with a leaf index.
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let seen: Arc<Mutex<Vec<Checkpoint>>> = Arc::default();
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (progress_tx, progress) = mpsc::channel::<u64>();

    std::thread::scope(|s| {
        for c in 0..CLIENTS {
            let (acked, seen, count, stop, bases, shop, progress_tx, key) = (
                acked.clone(),
                seen.clone(),
                count.clone(),
                stop.clone(),
                bases.clone(),
                shop.clone(),
                progress_tx.clone(),
                key.clone(),
            );
            s.spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut node = c % 3;
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let base = bases.read().unwrap()[node].clone();
                    let subject = format!("c{c}_{i}");
                    let sent = client
                        .put(format!("{base}/v1/subjects/{subject}/data"))
                        .bearer_auth(&shop)
                        .json(&json!({ "purpose": OPS, "fields": { "user.name": subject } }))
                        .send();
                    let Ok(resp) = sent else {
                        // That node is gone: use the next one.
                        node = (node + 1) % 3;
                        continue;
                    };
                    let status = resp.status().as_u16();
                    let body: Value = resp.json().unwrap_or(Value::Null);
                    if let Some(leaf) = body["leaf_index"].as_u64() {
                        acked.lock().unwrap().push((subject.clone(), leaf));
                        let _ = progress_tx.send(count.fetch_add(1, Ordering::SeqCst) + 1);
                    } else {
                        // Not acknowledged (the sequencer died under it): the client may not
                        // assume anything, and this test assumes nothing of it.
                        assert!(
                            status == 503 || status == 500,
                            "{status} {body} from node {node}"
                        );
                    }
                    if i % 5 == 0
                        && let Some(cp) = checkpoint_at(&base, &key)
                    {
                        seen.lock().unwrap().push(cp);
                    }
                    node = (node + 1) % 3;
                }
            });
        }
        drop(progress_tx);
        let wait_for = |n: u64| {
            for done in progress.iter() {
                if done >= n {
                    return;
                }
            }
            panic!("the clients stopped early");
        };
        wait_for(150);
        // Only the sequencer is killed; its address now refuses connections.
        nodes[0].kill();
        let killed_at = count.load(Ordering::SeqCst);
        // Writes go on through the followers once one of them has taken over.
        wait_for(killed_at + 150);
        stop.store(true, Ordering::SeqCst);
    });

    let survivors = &nodes[1..];
    let sequencers: Vec<bool> = survivors.iter().map(TestApp::is_sequencer).collect();
    assert_eq!(
        sequencers.iter().filter(|s| **s).count(),
        1,
        "exactly one survivor took over: {sequencers:?}"
    );
    let last = checkpoint_at(&survivors[0].base, &key).unwrap();

    // Exactly once, where it was said to be: no two acknowledgements share a leaf, and each
    // customer's history holds their one `collected` event at that leaf.
    let acked = acked.lock().unwrap().clone();
    let leaves: HashSet<u64> = acked.iter().map(|(_, leaf)| *leaf).collect();
    assert_eq!(
        leaves.len(),
        acked.len(),
        "two acknowledgements share a leaf"
    );
    let by_subject: BTreeMap<&str, u64> = acked.iter().map(|(s, l)| (s.as_str(), *l)).collect();
    for (i, (subject, leaf)) in by_subject.iter().enumerate() {
        assert!(*leaf < last.size, "leaf {leaf} of {subject} lost");
        let node = &survivors[i % 2];
        let me = node.sign_in(subject);
        let history = node.send(
            "GET",
            &format!("/v1/subjects/{subject}/history"),
            Some(&me),
            None,
        );
        let events = history.body["events"].as_array().unwrap();
        let collected: Vec<u64> = events
            .iter()
            .filter(|e| e["event"]["type"] == "collected")
            .map(|e| e["leaf_index"].as_u64().unwrap())
            .collect();
        assert_eq!(collected, vec![*leaf], "{subject}: {}", history.body);
        // Completeness on a sample (each check reads a whole history).
        if i % 25 == 0 {
            verify_history(&history.body, &node.log_key);
            check_completeness(&history.body).unwrap();
        }
    }

    // Every checkpoint any node served is a prefix of the last one.
    for old in seen.lock().unwrap().iter() {
        assert_consistent(&survivors[0], old, &last);
    }

    // The whole log verifies: every tile and entry bundle from a survivor, then fsck.
    let tiles = format!("{}/log", survivors[1].base);
    let (ok, out) = survivors[1].candor(&[
        "verify",
        "--tiles",
        &tiles,
        "--key",
        &survivors[1].log_key,
        "--all-entries",
    ]);
    assert!(ok, "{out}");
    for node in nodes.iter_mut() {
        node.kill();
    }
    let (ok, out) = schema.candor(&nodes[1], "fsck");
    assert!(ok, "{out}");
}

/// A revoked key is refused on every node from the moment its revocation commits: no node keeps
/// a copy of the key that outlives it, and the sessions it minted die with it.
#[test]
#[cfg_attr(
    not(candor_postgres_tests),
    ignore = "needs PostgreSQL: set CANDOR_TEST_POSTGRES to a server URL (.ci/run does)"
)]
fn a_revoked_key_is_refused_on_every_node_at_once() {
    let schema = Schema::new("cluster_revocation");
    let nodes = cluster(&schema);
    let shop = nodes[1].service_key("checkout", &[OPS], json!({ "can_mint_sessions": true }));
    let put = nodes[2].send(
        "PUT",
        "/v1/subjects/cus_r/data",
        Some(&shop),
        Some(json!({ "purpose": OPS, "fields": { "user.name": "R" } })),
    );
    assert_eq!(put.status, 200, "{}", put.body);
    let delegated = nodes[0].session(&shop, "cus_r");
    let read = |node: &TestApp, token: &str| {
        node.send(
            "POST",
            "/v1/access",
            Some(token),
            Some(json!({ "subject": "cus_r", "purpose": OPS, "fields": ["user.name"] })),
        )
        .status
    };
    // Every node has used the key, and the session, before it is revoked.
    for node in &nodes {
        assert_eq!(read(node, &shop), 200);
        let r = node.send("GET", "/v1/subjects/cus_r/data", Some(&delegated), None);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let id = shop.split('_').nth(1).unwrap();
    let r = nodes[1].send(
        "DELETE",
        &format!("/v1/keys/{id}"),
        Some(&nodes[1].admin),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    for node in &nodes {
        assert_eq!(read(node, &shop), 401, "revoked everywhere at once");
        let r = node.send("GET", "/v1/subjects/cus_r/data", Some(&delegated), None);
        assert_eq!(r.status, 401, "its sessions too");
    }
    let listed = nodes[2].send("GET", "/v1/keys", Some(&nodes[2].admin), None);
    let entry = listed.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap()
        .clone();
    assert!(entry["revoked_at"].is_i64(), "{entry}");
    assert!(entry.get("secret_hash").is_none(), "{entry}");
}

#[test]
#[cfg_attr(
    not(candor_postgres_tests),
    ignore = "needs PostgreSQL: set CANDOR_TEST_POSTGRES to a server URL (.ci/run does)"
)]
fn a_key_epoch_rolled_through_one_node_opens_on_every_node_and_each_destroys_the_old() {
    let schema = Schema::new("cluster_epochs");
    let nodes = cluster_of(3, &schema, |_| {
        [
            "--backup-retention-days",
            "0",
            "--key-epoch-check-secs",
            "1",
        ]
        .map(String::from)
        .to_vec()
    });
    let shop = nodes[1].service_key("checkout", &[OPS], json!({}));
    let put = |node: &TestApp, subject: &str| {
        let r = node.send(
            "PUT",
            &format!("/v1/subjects/{subject}/data"),
            Some(&shop),
            Some(json!({ "purpose": OPS, "fields": { "user.name": subject } })),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    };
    let read = |node: &TestApp, subject: &str| {
        let r = node.send(
            "POST",
            "/v1/access",
            Some(&shop),
            Some(json!({ "subject": subject, "purpose": OPS, "fields": ["user.name"] })),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["data"]["user.name"].clone()
    };
    put(&nodes[2], "cus_before");

    // Rolled through a follower: the new epoch's key travels nowhere, every node derives it.
    assert!(!nodes[1].is_sequencer());
    let r = nodes[1].send("POST", "/v1/key-epochs", Some(&nodes[1].admin), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["current"], 2, "{}", r.body);
    assert!(r.body["epochs"][0]["destroyed_at"].is_i64(), "{}", r.body);
    put(&nodes[2], "cus_after");
    for node in &nodes {
        assert_eq!(read(node, "cus_before"), "cus_before");
        assert_eq!(read(node, "cus_after"), "cus_after");
    }

    // Each node moves its own keyring past the destroyed epoch at its next check.
    for node in &nodes {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let r = node.send("GET", "/v1/key-epochs", Some(&node.admin), None);
            assert_eq!(r.status, 200, "{}", r.body);
            if r.body["oldest_held"] == 2 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "a node kept epoch 1 a minute after its destruction: {}",
                r.body
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    let log = nodes[0].whole_log("/v1/operator/history", &nodes[0].admin);
    let started = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["type"] == "key_epoch_started")
        .count();
    assert_eq!(started, 2, "epoch 1 at init, epoch 2 once, whoever rolled");
}
