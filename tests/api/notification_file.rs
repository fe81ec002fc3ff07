//! Data hygiene, black-box: what the app leaves on disk.
//!
//! - `notification.email = "file"` (the single binary's default): each message is one
//!   RFC 5322 file `<data_dir>/outbox/<notification id>.eml`, owner-only, with the ticket, to
//!   its user only; nothing half-written is left beside them.
//! - Every file the app creates under `data_dir` (each store's `.db`, its `-wal`, `-shm` and
//!   `.db.lock`, the keys, the outbox) is owner-only, and so are the directories it creates;
//!   database files an older version left readable by others are narrowed at start.
//!
//! Files are read as [`Email`]s, decoded the way the SMTP sink decodes what it receives.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notification::service::channel::EmailAdapter;

use crate::fixtures::{GOOD, PaidBesideAnother, ROW_A, ada_pays_beside_bob, book, card, customer, pay_ok, screening};
use crate::helpers::{Backend, TestApp, spawn_app_with, start, test_settings, time};
use crate::notification::{all_sent, kinds, wait_for_notifications};
use crate::smtp::Email;

/// Where things that happen in the background must have happened by.
const SETTLE: Duration = Duration::from_secs(15);

/// Every SQLite store of the single binary: the five modules and the bus's events store.
const STORES: [&str; 6] = ["auth", "movie", "booking", "payment", "notification", "events"];

on_both_backends!(the_file_outbox_holds_each_message_as_an_eml_file_to_its_user_only);

/// The permission bits of `path`.
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// The outbox's entries, by file name.
fn outbox(app: &TestApp) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(app.data_dir.join("outbox"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort_unstable();
    names
}

/// The message in the `.eml` file at `path`, decoded.
fn read_eml(path: &Path) -> Email {
    Email::parse(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

async fn the_file_outbox_holds_each_message_as_an_eml_file_to_its_user_only(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.sections.notification.email = EmailAdapter::File).await;
    // Another user's booking at the same time: his mail must not reach her, nor hers him.
    let PaidBesideAnother { screen, ada, booking, bob, bobs } = ada_pays_beside_bob(&app, SETTLE).await;
    let booking_id = booking["id"].as_str().unwrap();
    let bobs_id = bobs["id"].as_str().unwrap();

    // A notification is `sent` once its file is in place.
    let hers = wait_for_notifications(&app, &ada.token, |items| items.len() == 2 && all_sent(items)).await;
    assert_eq!(kinds(&hers), ["booking_created", "booking_confirmed"], "{hers:#?}");
    let his = wait_for_notifications(&app, &bob.token, |items| items.len() == 1 && all_sent(items)).await;

    // One file per notification, named by its id, and nothing else (no temporary file).
    let mut expected: Vec<String> =
        hers.iter().chain(&his).map(|n| format!("{}.eml", n["id"].as_str().unwrap())).collect();
    expected.sort_unstable();
    assert_eq!(outbox(&app), expected);
    let dir = app.data_dir.join("outbox");
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());

    let from = app.settings.sections.notification.from.as_str();
    let starts_at = time(&screen.showtime["start_time"]).format("%a %-d %b %Y, %H:%M UTC").to_string();
    let amount = format!("24.00 {}", screen.showtime["currency"].as_str().unwrap());
    let confirmed = hers.iter().find(|n| n["kind"] == "booking_confirmed").unwrap();
    let path = dir.join(format!("{}.eml", confirmed["id"].as_str().unwrap()));
    assert_eq!(mode(&path), 0o600, "{}", path.display());
    let ticket = read_eml(&path);
    assert_eq!(ticket.to.as_deref(), Some("ada@example.com"), "{ticket:#?}");
    assert_eq!(ticket.from.as_deref(), Some(from), "{ticket:#?}");
    assert_eq!(ticket.subject.as_deref(), confirmed["subject"].as_str(), "{ticket:#?}");
    assert_eq!(ticket.content_type, "multipart/alternative", "{ticket:#?}");
    for (part, body) in [("text", &ticket.text), ("html", &ticket.html)] {
        let body = body.as_deref().unwrap_or_else(|| panic!("no {part} part: {ticket:#?}"));
        for needle in ["Booked Solid", "Screen 1", starts_at.as_str(), "A1, A2", booking_id, amount.as_str()] {
            assert!(body.contains(needle), "the {part} part lacks {needle:?}:\n{body}");
        }
        assert!(!body.contains(bobs_id), "the {part} part names bob's booking:\n{body}");
    }

    let (held, held_path) = (&his[0], dir.join(format!("{}.eml", his[0]["id"].as_str().unwrap())));
    let message = read_eml(&held_path);
    assert_eq!(message.to.as_deref(), Some("bob@example.com"), "{message:#?}");
    assert_eq!(message.subject.as_deref(), held["subject"].as_str(), "{message:#?}");
    let text = message.text.as_deref().unwrap_or_else(|| panic!("no text part: {message:#?}"));
    assert!(text.contains(bobs_id), "{message:#?}");
    assert!(!text.contains(booking_id), "{message:#?}");
}

/// Every file and directory under `dir`, recursively, `dir` included.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut paths = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { paths.extend(tree(&path)) } else { paths.push(path) }
    }
    paths
}

/// The entries of `paths` whose mode is not `0700` (directories) or owner-only (files), with
/// their modes.
fn open_to_others(paths: &[PathBuf]) -> Vec<(PathBuf, String)> {
    paths
        .iter()
        .filter(|p| if p.is_dir() { mode(p) != 0o700 } else { mode(p) & 0o077 != 0 })
        .map(|p| (p.clone(), format!("{:o}", mode(p))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_the_single_binary_creates_under_data_dir_is_owner_only() {
    // A data_dir that does not exist yet, inside a private temporary directory.
    let data = Arc::new(tempfile::TempDir::new().unwrap());
    let data_dir = data.path().join("data");
    let mut settings = test_settings(&Backend::Sqlite, &data_dir);
    settings.sections.notification.email = EmailAdapter::File;
    let app = start(settings, Arc::clone(&data), Arc::new(|_| {})).await;

    // Some writes in every store: a booking paid, its notifications written to the outbox.
    let screen = screening(&app, ROW_A).await;
    let ada = customer(&app, "ada").await;
    let booking = book(&app, &ada.token, &screen, &["A1"]).await;
    pay_ok(&app, &ada.token, &card(&booking, GOOD)).await;
    wait_for_notifications(&app, &ada.token, |items| items.len() == 2 && all_sent(items)).await;

    let paths = tree(&data_dir);
    for store in STORES {
        // The -wal and -shm files exist while the store is open (WAL mode).
        for suffix in ["db", "db-wal", "db-shm", "db.lock"] {
            let path = data_dir.join(format!("{store}.{suffix}"));
            assert!(paths.contains(&path), "{} missing among {paths:#?}", path.display());
        }
    }
    assert!(paths.contains(&data_dir.join("outbox")), "{paths:#?}");
    assert_eq!(open_to_others(&paths), [], "among {paths:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_files_left_readable_by_others_are_narrowed_at_start() {
    let data = Arc::new(tempfile::TempDir::new().unwrap());
    // A store as an older version left it: world-readable (an empty file is a new database).
    let wide = data.path().join("booking.db");
    std::fs::write(&wide, b"").unwrap();
    std::fs::set_permissions(&wide, std::fs::Permissions::from_mode(0o644)).unwrap();
    let settings = test_settings(&Backend::Sqlite, data.path());
    let app = start(settings, Arc::clone(&data), Arc::new(|_| {})).await;

    // The store works, and it and its companions are the owner's alone.
    let screen = screening(&app, ROW_A).await;
    let ada = customer(&app, "ada").await;
    book(&app, &ada.token, &screen, &["A1"]).await;
    for suffix in ["db", "db-wal", "db-shm", "db.lock"] {
        let path = data.path().join(format!("booking.{suffix}"));
        assert_eq!(format!("{:o}", mode(&path)), "600", "{}", path.display());
    }
}
