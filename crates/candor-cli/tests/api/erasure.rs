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
    ] {
        assert!(seen.iter().any(|s| s == expected), "{seen:?}");
    }
}
