//! Signing keys: encrypted at rest, pre-published on rotation, listed by the CLI.

use std::process::Command;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use patron::store::schema::signing_keys;

use crate::helpers::TestServer;

fn cli(s: &TestServer, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_patron"));
    cmd.args(args)
        .env_clear()
        .env("PATRON_DATABASE_URL", s.db.url())
        .current_dir(s.db.workdir());
    if matches!(s.db, crate::helpers::TestDb::Postgres { .. }) {
        cmd.env(
            "PATRON_KEY_ENCRYPTION_KEY",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        );
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn private_keys_are_stored_encrypted() {
    let s = TestServer::spawn();
    let mut c = s.db.connect();
    let (kid, enc, public): (String, String, String) = signing_keys::table
        .select((
            signing_keys::kid,
            signing_keys::private_key_enc,
            signing_keys::public_jwk,
        ))
        .first(&mut c)
        .unwrap();
    assert!(!public.contains("\"d\""), "public JWK only");
    let raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &enc).unwrap();
    // PKCS#8 DER starts with a SEQUENCE tag (0x30); AES-GCM output with a random nonce is not
    // a parseable key.
    assert!(josekit::jws::ES256.signer_from_der(&raw).is_err());
    assert!(s.published_kids().contains(&kid));
}

#[test]
fn rotation_pre_publishes_the_next_key_before_it_signs() {
    let s = TestServer::spawn();
    let first = s.published_kids();
    assert_eq!(first.len(), 1);
    let (ok, out, err) = cli(&s, &["keys", "rotate", "--delay", "3600"]);
    assert!(ok, "{err}");
    assert!(out.contains("pre-published signing key"), "{out}");

    let deadline = Instant::now() + Duration::from_secs(15);
    let kids = loop {
        let kids = s.published_kids();
        if kids.len() == 2 {
            break kids;
        }
        assert!(
            Instant::now() < deadline,
            "the running server never published the next key"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(kids.contains(&first[0]), "the current key stays published");

    let (ok, out, _) = cli(&s, &["keys", "list"]);
    assert!(ok);
    assert!(out.contains("current") && out.contains("next"), "{out}");
    assert!(out.contains(&first[0]));
}

#[test]
fn a_promoted_key_retires_the_old_one_which_stays_published() {
    let s = TestServer::spawn();
    let first = s.published_kids()[0].clone();
    let (ok, _, err) = cli(&s, &["keys", "rotate", "--delay", "0"]);
    assert!(ok, "{err}");
    std::thread::sleep(Duration::from_millis(1200));
    let (ok, out, _) = cli(&s, &["keys", "list"]);
    assert!(ok);
    let line = out.lines().find(|l| l.starts_with(&first)).unwrap();
    assert!(line.contains("retiring"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while s.published_kids().len() != 2 {
        assert!(Instant::now() < deadline, "new key never published");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        s.published_kids().contains(&first),
        "retiring key stays until its tokens expire"
    );
}

#[test]
fn a_wrong_key_encryption_key_stops_start_up_with_a_clear_message() {
    let s = TestServer::spawn();
    let url = s.db.url().to_owned();
    let workdir = s.db.workdir();
    let out = Command::new(env!("CARGO_BIN_EXE_patron"))
        .args(["serve"])
        .env_clear()
        .env("PATRON_DATABASE_URL", url)
        .env("PATRON_LISTEN", "127.0.0.1:0")
        .env(
            "PATRON_KEY_ENCRYPTION_KEY",
            "ZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmY=",
        )
        .current_dir(workdir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("key-encryption key"), "{err}");
}
