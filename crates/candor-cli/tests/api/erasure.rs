//! Erasure on disk: once an erasure is acknowledged, no earlier state of the live files opens the
//! customer's data, and the files holding keys and data are the owner's alone.

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::helpers::*;

const OPS: &str = "essential.service.operations";

/// The WAL's header and each frame's: SQLite's file format, section 4.
const WAL_HEADER: usize = 32;
const FRAME_HEADER: usize = 24;

/// Opens a copy of `db` with `wal` cut back to its first `frames` frames, as someone holding a
/// copy of the live files could, and counts what is left of `subject` that would open their
/// data: a wrapped key, sealed fields, sealed event bodies.
fn what_a_cut_copy_holds(db: &[u8], wal: &[u8], frames: usize, subject: &str) -> (i64, i64, i64) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.db"), db).unwrap();
    if frames > 0 {
        let page = u32::from_be_bytes(wal[8..12].try_into().unwrap()) as usize;
        let end = (WAL_HEADER + frames * (FRAME_HEADER + page)).min(wal.len());
        std::fs::write(dir.path().join("c.db-wal"), &wal[..end]).unwrap();
    }
    let conn = rusqlite::Connection::open(dir.path().join("c.db")).unwrap();
    let count = |sql: &str| {
        conn.query_row(sql, [subject], |r| r.get::<_, i64>(0))
            .unwrap_or(0)
    };
    (
        count("SELECT count(*) FROM subjects WHERE id = ?1 AND wrapped_key IS NOT NULL"),
        count("SELECT count(*) FROM fields WHERE subject_id = ?1"),
        count("SELECT count(*) FROM events WHERE subject_id = ?1 AND sealed_body IS NOT NULL"),
    )
}

fn frames(wal: &[u8]) -> usize {
    if wal.len() < WAL_HEADER {
        return 0;
    }
    let page = u32::from_be_bytes(wal[8..12].try_into().unwrap()) as usize;
    (wal.len() - WAL_HEADER) / (FRAME_HEADER + page)
}

#[test]
fn no_earlier_state_of_the_live_files_opens_an_erased_customer() {
    let app = TestApp::spawn();
    let shop = app.service_key("checkout", &[OPS], json!({ "can_erase": true }));
    for subject in ["cus_gone", "cus_stays"] {
        let r = app.send(
            "PUT",
            &format!("/v1/subjects/{subject}/data"),
            Some(&shop),
            Some(json!({ "purpose": OPS, "fields": { "user.name": "Grace", "user.contact.address": "1 Elm St" } })),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = app.send("DELETE", "/v1/subjects/cus_gone", Some(&shop), None);
    assert_eq!(r.status, 200, "{}", r.body);

    // The copy is taken at the acknowledgement, before anything else is written.
    let home = app.home();
    let db = std::fs::read(home.join("candor.db")).unwrap();
    let wal = std::fs::read(home.join("candor.db-wal")).unwrap_or_default();
    for cut in 0..=frames(&wal) {
        assert_eq!(
            what_a_cut_copy_holds(&db, &wal, cut, "cus_gone"),
            (0, 0, 0),
            "the live files cut back to {cut} of {} WAL frames open the erased customer",
            frames(&wal)
        );
    }
    let (key, fields, _) = what_a_cut_copy_holds(&db, &wal, frames(&wal), "cus_stays");
    assert_eq!((key, fields), (1, 2), "the copy itself is readable");
}

#[test]
fn the_home_s_secret_and_data_files_are_the_owner_s_alone() {
    let app = TestApp::spawn();
    let shop = app.service_key("checkout", &[OPS], json!({}));
    let r = app.send(
        "PUT",
        "/v1/subjects/cus_m/data",
        Some(&shop),
        Some(json!({ "purpose": OPS, "fields": { "user.name": "Mode" } })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let home = app.home();
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&home).unwrap() {
        let entry = entry.unwrap();
        // The data map is the business's public declaration, edited by hand.
        if entry.file_name() == "datamap.toml" {
            continue;
        }
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        seen.push(entry.file_name().to_string_lossy().into_owned());
        assert_eq!(
            mode & 0o077,
            0,
            "{} is {mode:o}",
            entry.file_name().to_string_lossy()
        );
    }
    for expected in [
        "candor.db",
        "candor.db-wal",
        "candor.db-shm",
        "candor.db.lock",
        "root.key",
        "log.key",
        "keyring",
    ] {
        assert!(seen.iter().any(|s| s == expected), "{seen:?}");
    }
}

/// What someone holding `backup` (a copy of the database), the root key and the home's keyring
/// as it is now can read of `subject`'s name: Candor's own keyring code, run by an attacker.
fn what_a_backup_opens(
    backup: &std::path::Path,
    home: &std::path::Path,
    subject: &str,
) -> Result<String, String> {
    let root = std::fs::read_to_string(home.join("root.key")).unwrap();
    let root = candor_crypto::RootKey::from_base64(&root).unwrap();
    let keyring = candor_vault::Keyring::open(&home.join("keyring"), &root).unwrap();
    let conn = rusqlite::Connection::open(backup).unwrap();
    let (wrapped, sealed): (Vec<u8>, Vec<u8>) = conn
        .query_row(
            "SELECT s.wrapped_key, f.sealed FROM subjects s JOIN fields f ON f.subject_id = s.id
             WHERE s.id = ?1 AND f.category = 'user.name'",
            [subject],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(|e| format!("the backup has no key or name: {e}"))?;
    let key = keyring
        .unwrap(subject, &wrapped)
        .map_err(|e| e.to_string())?;
    let name = key
        .open(
            subject,
            candor_crypto::SealContext::Field("user.name"),
            &sealed,
        )
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8(name.to_vec()).unwrap())
}

#[test]
fn a_backup_taken_before_an_erasure_stops_opening_once_its_key_epoch_is_destroyed() {
    let mut app = TestApp::init();
    app.serve_args
        .extend(["--backup-retention-days".into(), "0".into()]);
    app.start();
    let shop = app.service_key("checkout", &[OPS], json!({ "can_erase": true }));
    for (subject, name) in [("cus_gone", "Grace"), ("cus_stays", "Alan")] {
        let r = app.send(
            "PUT",
            &format!("/v1/subjects/{subject}/data"),
            Some(&shop),
            Some(json!({ "purpose": OPS, "fields": { "user.name": name } })),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // A consistent online backup, as `sqlite3 .backup` or `VACUUM INTO` makes one.
    let home = app.home();
    let backups = tempfile::tempdir().unwrap();
    let backup = backups.path().join("candor.db");
    rusqlite::Connection::open(home.join("candor.db"))
        .unwrap()
        .execute("VACUUM INTO ?1", [backup.to_str().unwrap()])
        .unwrap();
    let r = app.send("DELETE", "/v1/subjects/cus_gone", Some(&shop), None);
    assert_eq!(r.status, 200, "{}", r.body);

    // Within the bound the backup still opens the erased customer: that is what the bound says.
    assert_eq!(
        what_a_backup_opens(&backup, &home, "cus_gone"),
        Ok("Grace".into())
    );
    let r = app.send("GET", "/v1/key-epochs", Some(&app.admin), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["current"], 1);
    assert_eq!(
        r.body["erasure_bound_secs"],
        30 * 86_400 + 3_600,
        "epoch length + retention + one check: {}",
        r.body
    );

    // A roll rewraps the live keys into epoch 2; with no retention, epoch 1 is destroyed at once.
    let r = app.send("POST", "/v1/key-epochs", Some(&app.admin), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["current"], 2, "{}", r.body);
    assert_eq!(r.body["oldest_held"], 2, "{}", r.body);
    assert!(r.body["epochs"][0]["destroyed_at"].is_i64(), "{}", r.body);

    let gone = what_a_backup_opens(&backup, &home, "cus_gone");
    assert!(
        gone.as_ref().is_err_and(|e| e.contains("destroyed")),
        "{gone:?}"
    );
    assert!(
        what_a_backup_opens(&backup, &home, "cus_stays").is_err(),
        "the whole backup is shut, as every backup older than the bound is"
    );
    // The live customer, rewrapped, reads on.
    let r = app.send(
        "POST",
        "/v1/access",
        Some(&shop),
        Some(json!({ "subject": "cus_stays", "purpose": OPS, "fields": ["user.name"] })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["user.name"], "Alan", "{}", r.body);
    let log = app.whole_log("/v1/operator/history", &app.admin.clone());
    let events: Vec<&str> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"]["type"].as_str())
        .filter(|t| t.starts_with("key_epoch"))
        .collect();
    assert_eq!(
        events,
        [
            "key_epoch_started",
            "key_epoch_started",
            "key_epochs_destroyed"
        ]
    );
}

#[test]
fn only_the_admin_reads_or_rolls_key_epochs() {
    let app = TestApp::spawn();
    let shop = app.service_key("checkout", &[OPS], json!({ "can_erase": true }));
    for method in ["GET", "POST"] {
        let r = app.send(method, "/v1/key-epochs", Some(&shop), None);
        assert_eq!((r.status, r.code()), (403, "forbidden"), "{method}");
        let r = app.send(method, "/v1/key-epochs", None, None);
        assert_eq!(r.status, 401, "{method}");
    }
}
