//! Health, readiness, metrics, and configuration errors at start-up.

use std::process::Command;

use crate::helpers::{AgentKey, TestServer, agent_metadata};

#[test]
fn health_readiness_and_metrics_answer() {
    let s = TestServer::spawn();
    assert_eq!(
        s.http
            .get(s.url("/healthz"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "ok\n"
    );
    let ready = s.http.get(s.url("/readyz")).send().unwrap();
    assert_eq!(ready.status(), 200);
    assert!(ready.text().unwrap().contains("database: ok"));

    s.register_ok(&agent_metadata(&AgentKey::generate()));
    let _ = s.register(&serde_json::json!({"client_name": 1}));
    let m = s
        .http
        .get(s.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        m.contains("patron_registrations_total{outcome=\"success\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("patron_registrations_total{outcome=\"failure\"} 1\n"),
        "{m}"
    );
    assert!(m.contains("# TYPE patron_audit_queue_depth gauge"));
}

/// Runs `patron serve` with only `env` in a fresh directory, expecting it to stop; returns
/// whether it succeeded and what it printed to stderr.
pub(crate) fn serve_with(env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_patron"));
    cmd.arg("serve").env_clear().current_dir(dir.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn invalid_configuration_stops_start_up_naming_the_setting() {
    let (ok, err) = serve_with(&[("PATRON_LISTEN", "not-an-address")]);
    assert!(!ok);
    assert!(err.contains("listen"), "{err}");

    let (ok, err) = serve_with(&[("PATRON_DATABASE_URL", "mysql://x/y")]);
    assert!(!ok);
    assert!(err.contains("database.url"), "{err}");

    let (ok, err) = serve_with(&[("PATRON_UNKNOWN_SETTING", "1")]);
    assert!(!ok);
    assert!(err.contains("unknown_setting"), "{err}");
}

#[test]
fn production_mode_refuses_unsafe_settings() {
    let kek = (
        "PATRON_KEY_ENCRYPTION_KEY",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    );
    let (ok, err) = serve_with(&[
        ("PATRON_MODE", "production"),
        ("PATRON_ISSUER", "http://auth.example.com"),
        kek,
    ]);
    assert!(!ok);
    assert!(err.contains("issuer"), "{err}");

    let (ok, err) = serve_with(&[
        ("PATRON_MODE", "production"),
        ("PATRON_ISSUER", "https://auth.example.com"),
    ]);
    assert!(!ok);
    assert!(err.contains("keys.encryption_key"), "{err}");

    let (ok, err) = serve_with(&[
        ("PATRON_MODE", "production"),
        ("PATRON_ISSUER", "https://auth.example.com"),
        ("PATRON_CONSOLE__DEVELOPMENT_LOGIN", "true"),
        kek,
    ]);
    assert!(!ok);
    assert!(err.contains("console.development_login"), "{err}");
}

#[test]
fn migrate_brings_a_fresh_database_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_patron"))
            .arg("migrate")
            .env_clear()
            .env(
                "PATRON_DATABASE_URL",
                format!("sqlite://{}", dir.path().join("m.db").display()),
            )
            .output()
            .unwrap()
    };
    let expected = migration_names("sqlite");
    assert!(!expected.is_empty(), "no migrations found");
    assert_eq!(
        migration_names("postgres"),
        expected,
        "both backends have the same migrations"
    );
    let first = run();
    assert!(first.status.success());
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        stdout.contains(&format!("applied {} migration(s)", expected.len())),
        "{stdout}"
    );
    let second = run();
    assert!(second.status.success());
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(stdout.contains("applied 0 migration(s)"), "{stdout}");
}

/// The migrations shipped for `backend` (the directories under `migrations/<backend>/` with
/// an `up.sql`), sorted by name.
fn migration_names(backend: &str) -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("up.sql").is_file())
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn each_response_carries_a_request_id_that_its_audit_event_records() {
    let s = TestServer::spawn();
    let r = s.register(&agent_metadata(&AgentKey::generate()));
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(r.status(), 201);
    let ev = s.wait_for_audit(|e| e.event == "client.register");
    assert_eq!(ev.request_id.as_deref(), Some(id.as_str()));
    let other = s.http.get(s.url("/healthz")).send().unwrap();
    assert_ne!(other.headers()["x-request-id"].to_str().unwrap(), id);
}
