//! Audit history in production: events past `audit.retention_days` are deleted by a
//! periodic sweep, every event can be streamed as JSON lines (`audit.export`), and the
//! console pages through an agent's audit trail instead of loading all of it.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use patron::store::models::audit_events::{self, NewAuditEvent};
use patron::store::schema::audit_events as table;
use serde_json::{Value, json};

use crate::helpers::console::{Browser, console_builder};
use crate::helpers::{Agent, AgentKey, TestServer, agent_metadata, assert_oauth_error, now};

const DAY: i64 = 86_400;

/// An event `event` about `client_id` at `at`, for inserting directly.
fn event_at(event: &str, client_id: &str, at: i64) -> NewAuditEvent {
    NewAuditEvent {
        at,
        event: event.to_owned(),
        outcome: "success".to_owned(),
        reason: None,
        client_id: Some(client_id.to_owned()),
        owner_id: None,
        audience: None,
        jti: None,
        source_addr: None,
        request_id: None,
        detail: None,
    }
}

/// The `at` times of the stored events about `client_id`, oldest first.
fn stored_times(s: &TestServer, client_id: &str) -> Vec<i64> {
    table::table
        .filter(table::client_id.eq(client_id))
        .order(table::at.asc())
        .select(table::at)
        .load(&mut s.db.connect())
        .unwrap()
}

#[test]
fn events_older_than_the_retention_are_deleted_and_newer_ones_stay() {
    let s = TestServer::builder()
        .env("PATRON_AUDIT__RETENTION_DAYS", "30")
        .env("PATRON_AUDIT__RETENTION_SWEEP_SECS", "1")
        .start();
    let t = now();
    // More old events than one sweep batch deletes, so several batches must run.
    let mut rows: Vec<NewAuditEvent> = (0..1_200)
        .map(|i| event_at("test.old", "retention-client", t - 31 * DAY - i))
        .collect();
    rows.extend((0..3).map(|i| event_at("test.recent", "retention-client", t - 29 * DAY + i)));
    audit_events::insert_batch(&mut s.db.connect(), &rows).unwrap();

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let times = stored_times(&s, "retention-client");
        if times.iter().all(|at| *at > t - 30 * DAY) {
            assert_eq!(times.len(), 3, "the events within the retention stay");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} events past the retention are still stored",
            times.iter().filter(|at| **at <= t - 30 * DAY).count()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        s.log().contains("deleted audit events past retention"),
        "{}",
        s.log()
    );
}

#[test]
fn a_retention_of_zero_keeps_events_forever() {
    let s = TestServer::builder()
        .env("PATRON_AUDIT__RETENTION_DAYS", "0")
        .env("PATRON_AUDIT__RETENTION_SWEEP_SECS", "1")
        .start();
    let t = now();
    audit_events::insert_batch(
        &mut s.db.connect(),
        &[event_at("test.ancient", "forever-client", t - 3_650 * DAY)],
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(stored_times(&s, "forever-client").len(), 1);
}

/// The JSON lines in `path`, once at least `n` are there.
fn export_lines(path: &std::path::Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= n {
            assert!(text.ends_with('\n'), "whole lines only: {text}");
            return text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect();
        }
        assert!(Instant::now() < deadline, "export has only: {text}");
        std::thread::sleep(Duration::from_millis(30));
    }
}

#[test]
fn the_export_writes_one_json_line_per_event_with_its_reason_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let s = TestServer::builder()
        .env("PATRON_AUDIT__EXPORT", path.to_str().unwrap())
        .start();

    assert_oauth_error(
        s.register_raw("application/json", b"{not json".to_vec()),
        400,
        "invalid_client_metadata",
    );
    s.expect_refusal_audited("client.register", "body_not_json");
    let mut metadata = agent_metadata(&AgentKey::generate());
    let m = metadata.as_object_mut().unwrap();
    m.remove("jwks");
    m.insert(
        "token_endpoint_auth_method".into(),
        json!("client_secret_basic"),
    );
    let registered = s.register_ok(&metadata);
    let client_id = registered["client_id"].as_str().unwrap();
    let secret = registered["client_secret"].as_str().unwrap();
    let stored = s.wait_for_audit(|e| {
        e.event == "client.register" && e.client_id.as_deref() == Some(client_id)
    });

    let lines = export_lines(&path, 2);
    let rows: Vec<_> = table::table
        .select(table::id)
        .load::<i64>(&mut s.db.connect())
        .unwrap();
    assert_eq!(
        lines.len(),
        rows.len(),
        "one line per stored event: {lines:?}"
    );
    let refused = lines
        .iter()
        .find(|l| l["event"] == "client.register" && l["outcome"] == "failure")
        .expect("the refusal is exported");
    assert_eq!(refused["reason"], "body_not_json");
    let ok = lines
        .iter()
        .find(|l| l["client_id"] == client_id)
        .expect("the registration is exported");
    assert_eq!(ok["outcome"], "success");
    assert_eq!(ok["at"], stored.at);
    assert!(ok["time"].as_str().unwrap().ends_with('Z'), "{ok}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(secret), "the client secret was exported");
}

#[test]
fn the_agent_page_pages_through_older_audit_events() {
    let s = console_builder().start();
    let agent = Agent::register(&s);
    agent.approve(&s, "dev:alice", json!({}));
    let t = now();
    // 120 events, numbered in their names; the newest come first.
    let rows: Vec<NewAuditEvent> = (0..120)
        .map(|i| event_at(&format!("test.e{i:03}"), &agent.client_id, t - 1_000 + i))
        .collect();
    audit_events::insert_batch(&mut s.db.connect(), &rows).unwrap();
    let alice = Browser::dev_login(&s, "alice");
    let path = format!("/console/agents/{}", agent.client_id);

    let first = alice.get(&path).expect(200);
    assert!(
        first.contains("test.e119"),
        "the newest event is on the first page"
    );
    assert!(
        !first.contains("test.e060"),
        "the first page holds 50 events at most"
    );
    let older = older_link(&first.body).expect("an older-events link");
    let second = alice.get(&older).expect(200);
    assert!(second.contains("test.e060") && !second.contains("test.e119"));
    assert!(
        second.contains(&format!("href=\"{path}\"")),
        "a link back to the newest"
    );
    let third = alice
        .get(&older_link(&second.body).expect("a third page"))
        .expect(200);
    assert!(third.contains("test.e000"), "the oldest event is reachable");
    // The registration and approval events are older still, then the trail ends.
    let mut page = third;
    for _ in 0..3 {
        match older_link(&page.body) {
            Some(link) => page = alice.get(&link).expect(200),
            None => break,
        }
    }
    assert!(older_link(&page.body).is_none(), "the trail ends");

    for bad in ["abc", "-5", "0", "99999999999999999999"] {
        alice.get(&format!("{path}?before={bad}")).expect(400);
    }
    // Another owner's agent pages as "not found", whatever the cursor.
    let bob = Browser::dev_login(&s, "bob");
    assert_eq!(bob.get(&older).status, 404);
}

/// The "Older events" link of an agent page.
fn older_link(body: &str) -> Option<String> {
    let at = body.find("rel=\"next\"")?;
    let start = body[..at].rfind("href=\"")? + "href=\"".len();
    let end = start + body[start..].find('"')?;
    Some(body[start..end].replace("&amp;", "&"))
}
