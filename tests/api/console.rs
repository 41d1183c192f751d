//! The owner console over HTTP: development and GitHub logins, claiming agents by user code,
//! CSRF, owner scoping, escaping of agent metadata, open redirects, sessions, security
//! headers, the kill switch and rejection. A test plays the browser
//! ([`crate::helpers::console::Browser`]): no redirect is followed and cookies are carried by
//! hand.

use std::time::Duration;

use diesel::prelude::*;
use patron::store::models::clients::{self, ClientRow};
use patron::store::models::{grants, skills};
use patron::store::schema::enrollment_tokens;
use reqwest::header::LOCATION;
use serde_json::{Value, json};

use crate::helpers::console::{Browser, Page, console_builder, cookie_value};
use crate::helpers::{
    ADMIN, Agent, AgentKey, GithubStandIn, SKILL, TestServer, agent_metadata, assert_oauth_error,
    claims_of, thumbprint_of,
};

const ALICE: &str = "dev:alice";
const BOB: &str = "dev:bob";

/// [`console_builder`] started, with one skill (`read write`).
fn console_server() -> TestServer {
    let s = console_builder().start();
    s.add_skill(SKILL, "read write", 120, false, None);
    s
}

// ---- agents and what is stored ----------------------------------------------------------------

/// A pending agent with what its registration returned.
struct Pending {
    agent: Agent,
    /// As displayed, e.g. `BCDF-GHJK`.
    user_code: String,
    registration: Value,
}

/// Registers an agent like [`agent_metadata`], with `extra` members merged in.
fn register_pending(s: &TestServer, extra: Value) -> Pending {
    let key = AgentKey::generate();
    let mut metadata = agent_metadata(&key);
    for (k, v) in extra.as_object().expect("extra metadata object") {
        metadata[k] = v.clone();
    }
    let registration = s.register_ok(&metadata);
    let user_code = registration["user_code"]
        .as_str()
        .unwrap_or_else(|| panic!("a pending registration shows a user code: {registration}"))
        .to_owned();
    Pending {
        agent: Agent {
            key,
            dpop_key: AgentKey::generate(),
            client_id: registration["client_id"]
                .as_str()
                .expect("client_id")
                .to_owned(),
        },
        user_code,
        registration,
    }
}

/// An agent approved through the admin API for `owner` with `grants`, named `name`.
fn owned_agent(s: &TestServer, owner: &str, name: &str, grants: Value) -> Agent {
    let p = register_pending(s, json!({"client_name": name}));
    p.agent.approve(s, owner, grants);
    p.agent
}

fn stored(s: &TestServer, client_id: &str) -> Option<ClientRow> {
    clients::find(&mut s.db.connect(), client_id).expect("read client")
}

/// `(status, owner)` of a stored agent.
fn status_of(s: &TestServer, client_id: &str) -> (String, Option<String>) {
    let row = stored(s, client_id).expect("the agent is still stored");
    (row.status.as_str().to_owned(), row.owner_id)
}

fn grants_of(s: &TestServer, client_id: &str) -> Vec<(String, String)> {
    grants::for_client(&mut s.db.connect(), client_id)
        .expect("read grants")
        .into_iter()
        .map(|g| (g.audience, g.scopes))
        .collect()
}

fn is_active(a: &Agent, s: &TestServer, token: &str) -> bool {
    a.introspect(s, token)["active"] == json!(true)
}

fn csrf_refusal_audited(s: &TestServer, path: &str, n: usize) {
    s.wait_for_audit_count(n, |e| {
        e.event == "console.post"
            && e.outcome == "failure"
            && e.reason.as_deref() == Some("csrf_invalid")
            && e.detail.as_deref() == Some(path)
    });
}

// ---- 1. claiming ------------------------------------------------------------------------

#[test]
fn an_owner_claims_a_pending_agent_by_its_code_and_the_agent_then_gets_skill_tokens() {
    let s = console_server();
    let p = register_pending(&s, json!({}));
    let a = &p.agent;
    let claim_path = format!("/claim?user_code={}", p.user_code);
    assert_eq!(
        p.registration["verification_uri_complete"],
        json!(s.url(&claim_path))
    );
    // A pending agent gets no skill token.
    let refused = a.token(
        &s,
        &[("grant_type", "client_credentials"), ("resource", SKILL)],
    );
    assert_oauth_error(refused, 400, "unauthorized_client");
    s.expect_refusal_audited("token.issue", "agent_pending");

    // Without a session, the claim page sends the owner to log in, and back here afterwards.
    let anonymous = Browser::anonymous(&s);
    let to_login = anonymous.get(&claim_path).expect(303);
    let location = to_login.location.clone().expect("Location");
    let login_url = url::Url::parse(&s.url(&location)).expect("login URL");
    assert_eq!(login_url.path(), "/console/login");
    let return_to: Vec<String> = login_url
        .query_pairs()
        .filter(|(k, _)| k == "return_to")
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(return_to, vec![claim_path.clone()]);
    let login_page = anonymous.get(&location).expect(200);
    assert_eq!(login_page.input("return_to"), Some(claim_path.clone()));
    assert!(login_page.contains("action=\"/console/login/dev\""));

    // Log in as alice: a fresh session cookie, HttpOnly and SameSite=Lax, and back to the claim.
    let logged_in = anonymous
        .post(
            "/console/login/dev",
            &[("name", "alice"), ("return_to", &claim_path)],
        )
        .expect_see_other(&claim_path);
    let set_cookie = logged_in
        .session_set_cookie()
        .expect("a session cookie")
        .to_owned();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(
            set_cookie.split("; ").any(|a| a == attr),
            "{attr} missing: {set_cookie}"
        );
    }
    s.wait_for_audit(|e| {
        e.event == "owner.login" && e.outcome == "success" && e.owner_id.as_deref() == Some(ALICE)
    });
    let alice = Browser::with_cookie(&s, &cookie_value(&set_cookie));

    // The review page shows who asks: name, client id and key thumbprint.
    let review = alice.get(&claim_path).expect(200);
    assert!(review.contains("<th>Name</th><td>Test agent</td>"));
    assert!(review.contains(&a.client_id));
    assert!(review.contains(&thumbprint_of(&a.key)), "{}", review.body);
    assert!(review.contains(&format!("value=\"{SKILL}\"")));
    assert_eq!(review.input("user_code"), Some(p.user_code.clone()));
    assert!(
        review.contains("<span class=\"who\">alice</span>"),
        "the header shows who is logged in, by name: {}",
        review.body
    );
    assert!(
        !review.contains(&format!("<span class=\"who\">{ALICE}</span>")),
        "not by the raw owner id"
    );

    // Approve with one skill, read only.
    let csrf = review.csrf();
    let scopes_field = format!("scopes:{SKILL}");
    alice
        .post(
            "/claim",
            &[
                ("csrf", &csrf),
                ("user_code", &p.user_code),
                ("grant", SKILL),
                (&scopes_field, "read"),
                ("action", "approve"),
            ],
        )
        .expect_see_other(&format!("/console/agents/{}", a.client_id));
    assert_eq!(
        status_of(&s, &a.client_id),
        ("active".to_owned(), Some(ALICE.to_owned()))
    );
    assert_eq!(
        grants_of(&s, &a.client_id),
        vec![(SKILL.to_owned(), "read".to_owned())]
    );
    s.wait_for_audit(|e| {
        e.event == "agent.approve"
            && e.outcome == "success"
            && e.client_id.as_deref() == Some(a.client_id.as_str())
            && e.owner_id.as_deref() == Some(ALICE)
    });

    let page = alice
        .get(&format!("/console/agents/{}", a.client_id))
        .expect(200);
    assert!(
        page.contains("<span class=\"status active\">active</span>"),
        "{}",
        page.body
    );
    assert!(page.contains(&format!("<th>Owner</th><td>{ALICE}</td>")));
    assert!(page.contains(&format!("value=\"{SKILL}\" checked")));
    let dashboard = alice.get("/console").expect(200);
    assert!(dashboard.contains(&a.client_id));
    assert!(dashboard.contains(&format!("{SKILL} (read)")));

    // The grant is real: the agent gets a skill token with the granted scope only.
    let token = a.skill_token(&s, SKILL);
    let claims = claims_of(&token);
    assert_eq!(claims["aud"], json!(SKILL));
    assert_eq!(claims["scope"], json!("read"));
    // The code is spent.
    let again = alice.get(&claim_path).expect(404);
    assert!(again.contains("No pending agent has this code"));
}

#[test]
fn a_claim_granting_scopes_the_skill_does_not_offer_is_refused_and_the_agent_stays_pending() {
    let s = console_server();
    let p = register_pending(&s, json!({}));
    let alice = Browser::dev_login(&s, "alice");

    let page = alice
        .approve(&p.user_code, &[(SKILL, "read admin")])
        .expect(400);
    assert!(page.contains("scopes for"), "{}", page.body);
    assert_eq!(status_of(&s, &p.agent.client_id), ("pending".into(), None));
    assert!(grants_of(&s, &p.agent.client_id).is_empty());
    s.expect_refusal_audited("agent.approve", "grant_scope_unknown");

    let page = alice
        .approve(&p.user_code, &[("https://unknown.example/api", "read")])
        .expect(400);
    assert!(page.contains("no skill has audience"), "{}", page.body);
    assert_eq!(status_of(&s, &p.agent.client_id), ("pending".into(), None));

    // The code still works afterwards.
    alice
        .approve(&p.user_code, &[(SKILL, "write")])
        .expect_see_other(&format!("/console/agents/{}", p.agent.client_id));
}

#[test]
fn a_claim_never_grants_a_skill_with_no_scopes() {
    // The grants form on the agent page refuses a ticked skill with no scopes
    // (`grant_scope_unknown`); the claim form must not create such a grant either, or the
    // agent gets scope-less tokens for a skill the owner gave it nothing on.
    let s = console_server();
    let p = register_pending(&s, json!({}));
    let alice = Browser::dev_login(&s, "alice");

    let page = alice.approve(&p.user_code, &[(SKILL, " ")]).expect(400);
    assert!(page.contains("scopes for"), "{}", page.body);
    let grants = grants_of(&s, &p.agent.client_id);
    assert!(grants.is_empty(), "the claim stored a grant: {grants:?}");
    assert_eq!(status_of(&s, &p.agent.client_id), ("pending".into(), None));
    s.expect_refusal_audited("agent.approve", "grant_scope_unknown");
    let r = p.agent.token(
        &s,
        &[("grant_type", "client_credentials"), ("resource", SKILL)],
    );
    assert_oauth_error(r, 400, "unauthorized_client");
}

// ---- 2. CSRF ----------------------------------------------------------------------------

#[test]
fn console_posts_without_the_sessions_csrf_token_are_refused_and_change_nothing() {
    let s = console_server();
    let alice = Browser::dev_login(&s, "alice");
    let bob = Browser::dev_login(&s, "bob");
    let bobs_csrf = bob.csrf();
    let alices_csrf = alice.csrf();
    assert_ne!(
        alices_csrf, bobs_csrf,
        "each session has its own CSRF token"
    );
    let pending = register_pending(&s, json!({}));
    let active = owned_agent(&s, ALICE, "Alice agent", json!({SKILL: "read"}));
    let token = active.agent_token(&s);
    let scopes_field = format!("scopes:{SKILL}");
    let wrong = [
        None,
        Some(""),
        Some("not-the-token"),
        Some(bobs_csrf.as_str()),
    ];

    let agent_path = format!("/console/agents/{}", active.client_id);
    let attempts: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "/claim",
            vec![
                ("user_code", &pending.user_code),
                ("action", "approve"),
                ("grant", SKILL),
                (&scopes_field, "read"),
            ],
        ),
        (
            "/claim",
            vec![("user_code", &pending.user_code), ("action", "reject")],
        ),
        (&agent_path, vec![("action", "suspend")]),
        (&agent_path, vec![("action", "delete")]),
        (
            &agent_path,
            vec![
                ("action", "grants"),
                ("grant", SKILL),
                (&scopes_field, "read write"),
            ],
        ),
        ("/console/kill-switch", vec![("confirm", "yes")]),
        (
            "/console/skills",
            vec![
                ("audience", "https://csrf.example/api"),
                ("name", "Injected"),
                ("scopes", "all"),
            ],
        ),
        ("/console/enrollment", vec![("uses", "5")]),
        ("/console/logout", vec![]),
    ];
    for csrf in wrong {
        for (path, fields) in &attempts {
            let mut form = fields.clone();
            if let Some(c) = csrf {
                form.push(("csrf", c));
            }
            let page = alice.post(path, &form).expect(403);
            assert!(page.contains("Form expired"), "{path}: {}", page.body);
            assert!(!page.contains("Enrollment token"), "{path}");
        }
    }

    // Nothing changed: the pending agent is pending, the active one active with its grant,
    // its token still works, no skill was added, and alice is still logged in.
    assert_eq!(
        status_of(&s, &pending.agent.client_id),
        ("pending".into(), None)
    );
    assert_eq!(
        status_of(&s, &active.client_id),
        ("active".into(), Some(ALICE.into()))
    );
    assert_eq!(
        grants_of(&s, &active.client_id),
        vec![(SKILL.to_owned(), "read".to_owned())]
    );
    assert!(is_active(&active, &s, &token));
    active.skill_token(&s, SKILL);
    let dashboard = alice.get("/console").expect(200);
    assert!(!dashboard.contains("https://csrf.example/api"));
    assert_eq!(dashboard.csrf(), alices_csrf, "the session is unchanged");
    let review = alice
        .get(&format!("/claim?user_code={}", pending.user_code))
        .expect(200);
    assert!(review.contains(&pending.agent.client_id));

    for path in [
        "/claim",
        "/console/kill-switch",
        "/console/skills",
        "/console/enrollment",
        "/console/logout",
    ] {
        let n = if path == "/claim" { 8 } else { 4 };
        csrf_refusal_audited(&s, path, n);
    }
    csrf_refusal_audited(&s, &format!("/console/agents/{}", active.client_id), 12);
    s.wait_for_audit(|e| {
        e.event == "console.post"
            && e.reason.as_deref() == Some("csrf_invalid")
            && e.owner_id.as_deref() == Some(ALICE)
    });
    // The forms carry the token in their pages, and a correct one is accepted.
    alice
        .post(
            &format!("/console/agents/{}", active.client_id),
            &[("csrf", &alices_csrf), ("action", "suspend")],
        )
        .expect_see_other(&format!("/console/agents/{}", active.client_id));
    assert_eq!(status_of(&s, &active.client_id).0, "suspended");
}

#[test]
fn a_console_post_without_a_session_goes_to_the_login_page_and_changes_nothing() {
    let s = console_server();
    let pending = register_pending(&s, json!({}));
    let anonymous = Browser::anonymous(&s);
    anonymous
        .post(
            "/claim",
            &[
                ("csrf", "x"),
                ("user_code", &pending.user_code),
                ("action", "approve"),
            ],
        )
        .expect_see_other("/console/login");
    anonymous
        .post("/console/kill-switch", &[("csrf", "x"), ("confirm", "yes")])
        .expect_see_other("/console/login");
    // A made-up session cookie is no session.
    Browser::with_cookie(&s, "forged-session-value")
        .post(
            "/claim",
            &[
                ("csrf", "x"),
                ("user_code", &pending.user_code),
                ("action", "approve"),
            ],
        )
        .expect_see_other("/console/login");
    assert_eq!(
        status_of(&s, &pending.agent.client_id),
        ("pending".into(), None)
    );
}

#[test]
fn a_console_post_without_a_session_leaves_the_connection_usable() {
    // The login redirect of a POST without a session is sent before the form is read; the
    // server then closes the keep-alive connection without saying `Connection: close`, so a
    // client that reuses it (as HTTP/1.1 allows) sees its next request fail.
    use std::io::{Read, Write};
    let s = console_builder().start();
    let addr = s.base.strip_prefix("http://").expect("http base");
    let mut conn = std::net::TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let body = format!("csrf=x&confirm=yes&pad={}", "a".repeat(100));
    write!(
        conn,
        "POST /console/kill-switch HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send the POST");
    let mut first = Vec::new();
    let mut buf = [0u8; 4096];
    while !first.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).expect("read the first answer");
        assert!(n > 0, "closed before answering");
        first.extend_from_slice(&buf[..n]);
    }
    let first = String::from_utf8_lossy(&first).to_lowercase();
    assert!(first.starts_with("http/1.1 303"), "{first}");
    assert!(first.contains("location: /console/login"), "{first}");
    if first.contains("connection: close") {
        return; // announced: a client opens a new connection
    }
    let sent = write!(conn, "GET /console/login HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut second = Vec::new();
    while sent.is_ok() {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                second.extend_from_slice(&buf[..n]);
                if second.len() >= 12 {
                    break;
                }
            }
        }
    }
    let second = String::from_utf8_lossy(&second).to_lowercase();
    assert!(
        second.starts_with("http/1.1 200"),
        "the kept-alive connection was closed without `Connection: close`; next answer: {second:?}"
    );
}

// ---- 3. owner scoping -------------------------------------------------------------------

#[test]
fn an_owner_can_neither_see_nor_change_another_owners_agent() {
    let s = console_server();
    let alice = Browser::dev_login(&s, "alice");
    let bob = Browser::dev_login(&s, "bob");
    let alices = owned_agent(&s, ALICE, "Alice mailer", json!({SKILL: "read"}));
    let bobs = owned_agent(&s, BOB, "Bob crawler", json!({SKILL: "write"}));
    let token = alices.agent_token(&s);
    let alices_path = format!("/console/agents/{}", alices.client_id);

    // Bob cannot see it: the same 404 as for an agent that does not exist.
    let foreign = bob.get(&alices_path).expect(404);
    assert!(!foreign.contains("Alice mailer"));
    assert!(!foreign.contains(&alices.client_id));
    let missing = bob.get("/console/agents/no-such-agent").expect(404);
    assert_eq!(foreign.body, missing.body, "a foreign agent looks absent");

    // Nor change it.
    let csrf = bob.csrf();
    let scopes_field = format!("scopes:{SKILL}");
    for form in [
        vec![("action", "suspend")],
        vec![("action", "resume")],
        vec![("action", "delete")],
        vec![
            ("action", "grants"),
            ("grant", SKILL),
            (scopes_field.as_str(), "read write"),
        ],
        vec![("action", "grants")],
    ] {
        let mut form = form;
        form.push(("csrf", csrf.as_str()));
        let page = bob.post(&alices_path, &form).expect(404);
        assert!(page.contains("no such agent"), "{}", page.body);
        assert!(!page.contains("Alice mailer"));
    }
    assert_eq!(
        status_of(&s, &alices.client_id),
        ("active".into(), Some(ALICE.into()))
    );
    assert_eq!(
        grants_of(&s, &alices.client_id),
        vec![(SKILL.to_owned(), "read".to_owned())]
    );
    assert!(is_active(&alices, &s, &token));

    // Each dashboard lists only its owner's agents.
    let alice_dash = alice.get("/console").expect(200);
    assert!(alice_dash.contains(&alices.client_id) && alice_dash.contains("Alice mailer"));
    assert!(!alice_dash.contains(&bobs.client_id) && !alice_dash.contains("Bob crawler"));
    let bob_dash = bob.get("/console").expect(200);
    assert!(bob_dash.contains(&bobs.client_id) && bob_dash.contains("Bob crawler"));
    assert!(!bob_dash.contains(&alices.client_id) && !bob_dash.contains("Alice mailer"));
    alice
        .get(&format!("/console/agents/{}", bobs.client_id))
        .expect(404);

    // An unclaimed agent belongs to nobody: no owner sees or changes it from its id.
    let pending = register_pending(&s, json!({"client_name": "Unclaimed"}));
    let pending_path = format!("/console/agents/{}", pending.agent.client_id);
    alice.get(&pending_path).expect(404);
    let alices_csrf = alice.csrf();
    alice
        .post(
            &pending_path,
            &[
                ("csrf", &alices_csrf),
                ("action", "grants"),
                ("grant", SKILL),
                (&scopes_field, "read"),
            ],
        )
        .expect(404);
    alice
        .post(
            &pending_path,
            &[("csrf", &alices_csrf), ("action", "delete")],
        )
        .expect(404);
    assert_eq!(
        status_of(&s, &pending.agent.client_id),
        ("pending".into(), None)
    );
    assert!(grants_of(&s, &pending.agent.client_id).is_empty());

    // The owner herself can do what bob could not (the forms above were well formed).
    alice
        .post(
            &alices_path,
            &[
                ("csrf", &alices_csrf),
                ("action", "grants"),
                ("grant", SKILL),
                (&scopes_field, "read write"),
            ],
        )
        .expect_see_other(&alices_path);
    assert_eq!(
        grants_of(&s, &alices.client_id),
        vec![(SKILL.to_owned(), "read write".to_owned())]
    );
    s.wait_for_audit(|e| {
        e.event == "agent.grants"
            && e.outcome == "success"
            && e.client_id.as_deref() == Some(alices.client_id.as_str())
            && e.owner_id.as_deref() == Some(ALICE)
    });
    alice
        .post(
            &alices_path,
            &[("csrf", &alices_csrf), ("action", "delete")],
        )
        .expect_see_other("/console");
    assert!(stored(&s, &alices.client_id).is_none());
    assert!(stored(&s, &bobs.client_id).is_some());
}

// ---- 4. hostile strings -----------------------------------------------------------------

#[test]
fn hostile_agent_metadata_is_escaped_on_every_console_page() {
    let s = console_server();
    let name = "<script>alert(1)</script>";
    let software = "\"><img src=x onerror=alert(2)>";
    let p = register_pending(
        &s,
        json!({"client_name": name, "software_id": software, "scope": "read <b>write</b>"}),
    );
    let alice = Browser::dev_login(&s, "alice");

    let assert_escaped = |page: &Page| {
        assert!(!page.contains("<script"), "raw script tag:\n{}", page.body);
        assert!(!page.contains("<img"), "raw img tag:\n{}", page.body);
        assert!(!page.contains("<b>"), "raw b tag:\n{}", page.body);
        page.assert_shows_escaped(name);
    };
    let review = alice
        .get(&format!("/claim?user_code={}", p.user_code))
        .expect(200);
    assert_escaped(&review);
    review.assert_shows_escaped(software);
    review.assert_shows_escaped("read <b>write</b>");

    alice
        .approve(&p.user_code, &[(SKILL, "read")])
        .expect_see_other(&format!("/console/agents/{}", p.agent.client_id));
    let agent_page = alice
        .get(&format!("/console/agents/{}", p.agent.client_id))
        .expect(200);
    assert_escaped(&agent_page);
    agent_page.assert_shows_escaped(software);
    assert!(
        agent_page
            .shown_text()
            .contains(&format!("<title>{name} — Patron</title>")),
        "the title shows the name, escaped"
    );
    assert_escaped(&alice.get("/console").expect(200));

    // A hostile code in the query is echoed escaped too.
    let code = "\"><script>x</script>";
    let page = alice
        .get(&format!(
            "/claim?user_code={}",
            url::form_urlencoded::byte_serialize(code.as_bytes()).collect::<String>()
        ))
        .expect(404);
    assert!(!page.contains("<script"), "{}", page.body);
    page.assert_shows_escaped("value=\"\"><script>x</script>\"");
}

// ---- 5. user codes ----------------------------------------------------------------------

#[test]
fn an_unknown_or_spent_code_is_not_found_and_codes_forgive_case_and_dash() {
    let s = console_server();
    let p = register_pending(&s, json!({}));
    let alice = Browser::dev_login(&s, "alice");
    let unknown = if p.user_code == "BCDF-GHJK" {
        "BCDF-GHJL"
    } else {
        "BCDF-GHJK"
    };

    let page = alice
        .get(&format!("/claim?user_code={unknown}"))
        .expect(404);
    assert!(
        page.contains(
            "No pending agent has this code. It may be mistyped, expired or already claimed."
        ),
        "{}",
        page.body
    );
    assert!(!page.contains(&p.agent.client_id));
    s.expect_refusal_audited("agent.claim_lookup", "user_code_unknown");

    // Lower case, with or without the dash, finds the same agent.
    let lower = p.user_code.to_lowercase();
    let bare = lower.replace('-', "");
    for typed in [lower.as_str(), bare.as_str()] {
        let page = alice.get(&format!("/claim?user_code={typed}")).expect(200);
        assert!(page.contains(&p.agent.client_id), "{typed}: {}", page.body);
        assert_eq!(page.input("user_code"), Some(p.user_code.clone()));
    }
    // And claiming with the code as typed works.
    alice
        .approve(&bare, &[(SKILL, "read")])
        .expect_see_other(&format!("/console/agents/{}", p.agent.client_id));
    assert_eq!(
        status_of(&s, &p.agent.client_id),
        ("active".into(), Some(ALICE.into()))
    );

    // A claimed code is spent: same answer as an unknown one, for viewing and for claiming.
    let bob = Browser::dev_login(&s, "bob");
    let page = bob
        .get(&format!("/claim?user_code={}", p.user_code))
        .expect(404);
    assert!(page.contains("No pending agent has this code"));
    assert!(!page.contains(&p.agent.client_id));
    let page = bob.approve(&p.user_code, &[(SKILL, "write")]).expect(404);
    assert!(page.contains("No pending agent has this code"));
    assert_eq!(
        status_of(&s, &p.agent.client_id),
        ("active".into(), Some(ALICE.into()))
    );
    assert_eq!(
        grants_of(&s, &p.agent.client_id),
        vec![(SKILL.to_owned(), "read".to_owned())]
    );
}

#[test]
fn an_expired_code_says_so_and_cannot_be_claimed() {
    let s = console_builder()
        .env("PATRON_REGISTRATION__PENDING_TTL_SECS", "1")
        .start();
    s.add_skill(SKILL, "read write", 120, false, None);
    let p = register_pending(&s, json!({}));
    let alice = Browser::dev_login(&s, "alice");
    std::thread::sleep(Duration::from_millis(2200));

    let page = alice
        .get(&format!("/claim?user_code={}", p.user_code))
        .expect(404);
    assert!(
        page.contains("This code has expired. Ask the agent to register again."),
        "{}",
        page.body
    );
    assert!(!page.contains(&p.agent.client_id));
    let page = alice.approve(&p.user_code, &[(SKILL, "read")]).expect(404);
    assert!(page.contains("expired"), "{}", page.body);
    let page = alice
        .post(
            "/claim",
            &[
                ("csrf", &alice.csrf()),
                ("user_code", &p.user_code),
                ("action", "reject"),
            ],
        )
        .expect(404);
    assert!(page.contains("expired"), "{}", page.body);
    assert_eq!(status_of(&s, &p.agent.client_id), ("pending".into(), None));
    assert!(grants_of(&s, &p.agent.client_id).is_empty());
}

#[test]
fn rapid_code_lookups_from_one_address_are_rate_limited() {
    let s = console_server();
    let p = register_pending(&s, json!({}));
    let alice = Browser::dev_login(&s, "alice");
    let guesses = [
        "BBBB-BBBB",
        "CCCC-CCCC",
        "DDDD-DDDD",
        "FFFF-FFFF",
        "GGGG-GGGG",
        "HHHH-HHHH",
        "JJJJ-JJJJ",
        "KKKK-KKKK",
        "LLLL-LLLL",
        "MMMM-MMMM",
        "NNNN-NNNN",
        "PPPP-PPPP",
        "QQQQ-QQQQ",
        "RRRR-RRRR",
        "SSSS-SSSS",
    ];
    assert!(!guesses.contains(&p.user_code.as_str()));

    // The burst (10) is answered normally…
    for g in &guesses[..10] {
        let page = alice.get(&format!("/claim?user_code={g}")).expect(404);
        assert!(page.contains("No pending agent has this code"), "{g}");
    }
    // …then guesses are refused without a lookup.
    let limited = guesses[10..]
        .iter()
        .map(|g| alice.get(&format!("/claim?user_code={g}")).expect(404))
        .filter(|page| page.contains("Too many attempts. Wait a minute and try again."))
        .count();
    assert!(
        limited >= 4,
        "only {limited} of 5 rapid guesses were limited"
    );

    // While limited, even the right code is refused, and cannot be claimed.
    let page = alice
        .get(&format!("/claim?user_code={}", p.user_code))
        .expect(404);
    assert!(page.contains("Too many attempts"), "{}", page.body);
    assert!(!page.contains(&p.agent.client_id));
    // A forged X-Forwarded-For does not buy a fresh bucket (no proxy is trusted).
    let forged = s
        .http
        .get(s.url(&format!("/claim?user_code={}", p.user_code)))
        .header(
            "Cookie",
            format!("patron_session={}", alice.session().expect("session")),
        )
        .header("X-Forwarded-For", "203.0.113.7")
        .send()
        .expect("GET");
    let page = Page::read(forged).expect(404);
    assert!(page.contains("Too many attempts"), "{}", page.body);
    let page = alice.approve(&p.user_code, &[(SKILL, "read")]).expect(404);
    assert!(page.contains("Too many attempts"), "{}", page.body);
    assert_eq!(status_of(&s, &p.agent.client_id), ("pending".into(), None));
    s.expect_refusals_audited("agent.claim_lookup", "claim_rate_limited", limited + 3);
    s.expect_refusals_audited("agent.claim_lookup", "user_code_unknown", 10);
}

// ---- 6. open redirects ------------------------------------------------------------------

#[test]
fn return_to_cannot_send_the_owner_to_another_site() {
    let s = console_server();
    let anonymous = Browser::anonymous(&s);
    for evil in [
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/\t/evil.example",
        "",
    ] {
        let page = anonymous
            .post(
                "/console/login/dev",
                &[("name", "alice"), ("return_to", evil)],
            )
            .expect_see_other("/console");
        assert!(page.session_set_cookie().is_some(), "{evil:?}");

        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("return_to", evil)
            .finish();
        let login = anonymous
            .get(&format!("/console/login?{query}"))
            .expect(200);
        assert_eq!(
            login.input("return_to").as_deref(),
            Some("/console"),
            "{evil:?}"
        );
        assert!(!login.contains("evil.example"), "{evil:?}");
    }
    // A local path is kept.
    anonymous
        .post(
            "/console/login/dev",
            &[
                ("name", "alice"),
                ("return_to", "/claim?user_code=BCDF-GHJK"),
            ],
        )
        .expect_see_other("/claim?user_code=BCDF-GHJK");
}

#[test]
fn the_development_login_refuses_bad_names() {
    let s = console_server();
    let anonymous = Browser::anonymous(&s);
    let long = "a".repeat(65);
    for bad in ["", "a b", "dev:mallory", "<x>", long.as_str()] {
        let page = anonymous
            .post(
                "/console/login/dev",
                &[("name", bad), ("return_to", "/console")],
            )
            .expect(400);
        assert!(page.session_set_cookie().is_none(), "{bad:?}");
        assert!(page.contains("Invalid name"));
    }
}

/// Asserts that `s` offers no development login and refuses one.
fn assert_no_development_login(s: &TestServer) {
    let page = Browser::anonymous(s)
        .post("/console/login/dev", &[("name", "alice")])
        .expect(404);
    assert!(page.session_set_cookie().is_none());
    assert!(page.contains("The development login is disabled."));
    let login = Browser::anonymous(s).get("/console/login").expect(200);
    assert!(!login.contains("/console/login/dev"));
    assert!(login.contains("No login provider is configured"));
}

#[test]
fn the_development_login_is_on_by_default_in_development_on_loopback() {
    // The first run: no settings at all.
    let s = TestServer::spawn();
    let login = Browser::anonymous(&s).get("/console/login").expect(200);
    assert!(
        login.contains("action=\"/console/login/dev\""),
        "{}",
        login.body
    );
    assert!(!login.contains("No login provider is configured"));
    let done = Browser::anonymous(&s)
        .post(
            "/console/login/dev",
            &[("name", "alice"), ("return_to", "/console")],
        )
        .expect_see_other("/console");
    assert!(done.session_set_cookie().is_some());
    assert!(
        s.log().contains("the development login is on"),
        "{}",
        s.log()
    );
}

#[test]
fn the_development_login_is_off_when_switched_off_or_not_on_loopback() {
    let s = TestServer::builder()
        .env("PATRON_CONSOLE__DEVELOPMENT_LOGIN", "false")
        .start();
    assert_no_development_login(&s);
    assert!(!s.log().contains("the development login is on"));
    drop(s);

    // Development mode on every address: off unless asked for (and asking is refused at
    // start, see ops::production_mode_refuses_unsafe_settings and the config tests).
    let s = TestServer::builder()
        .env("PATRON_LISTEN", "0.0.0.0:0")
        .start();
    assert_no_development_login(&s);
    drop(s);

    // Production mode, even on loopback.
    let s = TestServer::builder()
        .env("PATRON_MODE", "production")
        .env("PATRON_ISSUER", "https://auth.example.com")
        .env(
            "PATRON_KEY_ENCRYPTION_KEY",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        )
        .start();
    assert_no_development_login(&s);
}

// ---- 7. GitHub login --------------------------------------------------------------------

/// The GitHub stand-in (`tests/support/github_standin.py`); killed on drop.
/// A Patron server whose console logs in with the stand-in.
fn github_server(standin: &GithubStandIn) -> TestServer {
    let config = standin.config_file();
    TestServer::builder()
        .env("PATRON_ADMIN_TOKEN", ADMIN)
        .env("PATRON_CONFIG", config.to_str().expect("UTF-8 path"))
        // Only the GitHub login, so that its page is what a production console shows.
        .env("PATRON_CONSOLE__DEVELOPMENT_LOGIN", "false")
        .start()
}

/// Starts a GitHub login with `return_to` in `browser` (keeping any cookie the start sets),
/// lets the stand-in log `user` in, and returns the callback URL GitHub sends the browser
/// back to.
fn github_callback(
    browser: &mut Browser,
    standin: &GithubStandIn,
    user: &str,
    return_to: &str,
) -> String {
    let s = browser.s;
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", return_to)
        .finish();
    let start = browser
        .get(&format!("/console/login/github?{query}"))
        .expect(303);
    assert!(
        start.session_set_cookie().is_none(),
        "no session before login"
    );
    browser.absorb(&start);
    let authorize = start.location.expect("Location");
    assert!(
        authorize.starts_with(&standin.url("/login/oauth/authorize?")),
        "{authorize}"
    );
    let authorize_url = url::Url::parse(&authorize).expect("authorize URL");
    let param = |k: &str| {
        authorize_url
            .query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("client_id").as_deref(), Some("test-client"));
    assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
    assert!(param("state").is_some_and(|st| st.len() >= 20));
    let r = s
        .http
        .get(format!("{authorize}&login_hint={user}"))
        .send()
        .expect("the stand-in answers");
    assert_eq!(r.status(), 302, "the stand-in redirects back");
    let back = r.headers()[LOCATION]
        .to_str()
        .expect("ASCII Location")
        .to_owned();
    assert!(
        back.starts_with(&s.url("/console/callback/github?")),
        "{back}"
    );
    back
}

#[test]
fn a_github_user_with_a_verified_address_logs_in_to_the_console() {
    let standin = GithubStandIn::start();
    let s = github_server(&standin);
    let anonymous = Browser::anonymous(&s);
    let login = anonymous
        .get("/console/login?return_to=https://evil.example")
        .expect(200);
    assert!(login.contains("Continue with GitHub"), "{}", login.body);
    assert!(!login.contains("evil.example"));
    assert!(
        !login.contains("/console/login/dev"),
        "no development login when switched off"
    );

    let mut octocat = Browser::anonymous(&s);
    let callback = github_callback(&mut octocat, &standin, "octocat", "/claim");
    let done = octocat.get(&callback).expect_see_other("/claim");
    let set_cookie = done.session_set_cookie().expect("a session cookie");
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
    octocat.absorb(&done);
    let dashboard = octocat.get("/console").expect(200);
    assert!(
        dashboard.contains("<span class=\"who\">The Octocat</span>"),
        "the header names the GitHub user: {}",
        dashboard.body
    );
    let octocat_id = standin.owner_id(583231);
    s.wait_for_audit(|e| {
        e.event == "owner.login"
            && e.outcome == "success"
            && e.owner_id.as_deref() == Some(octocat_id.as_str())
            && e.detail.as_deref() == Some("login with github")
    });

    // The owner can claim with this identity.
    s.add_skill(SKILL, "read write", 120, false, None);
    let p = register_pending(&s, json!({}));
    octocat
        .approve(&p.user_code, &[(SKILL, "read")])
        .expect_see_other(&format!("/console/agents/{}", p.agent.client_id));
    assert_eq!(
        status_of(&s, &p.agent.client_id),
        ("active".into(), Some(octocat_id))
    );
}

#[test]
fn a_github_user_without_a_verified_primary_address_gets_no_session() {
    let standin = GithubStandIn::start();
    let s = github_server(&standin);
    let mut browser = Browser::anonymous(&s);
    let callback = github_callback(&mut browser, &standin, "unverified", "/console");
    let page = browser.get(&callback).expect(400);
    assert!(page.contains("Login failed"), "{}", page.body);
    assert!(
        page.session_set_cookie().is_none(),
        "{:?}",
        page.set_cookies
    );
    s.expect_refusal_audited("owner.login", "email_not_verified");
    assert!(
        !page.contains("test-secret") && !page.contains("gho_"),
        "no upstream secret in the page"
    );
    // Nobody was recorded as logged in.
    let logins = s.wait_for_audit_count(0, |e| e.event == "owner.login" && e.outcome == "success");
    assert_eq!(logins, 0);
}

#[test]
fn a_github_callback_cannot_be_replayed() {
    let standin = GithubStandIn::start();
    let s = github_server(&standin);
    // An off-site return_to given at the start is replaced by the dashboard.
    let mut browser = Browser::anonymous(&s);
    let callback = github_callback(&mut browser, &standin, "octocat", "https://evil.example/");
    let first = browser.get(&callback).expect_see_other("/console");
    assert!(first.session_set_cookie().is_some());

    // The same browser (logged in or not) and another browser are both refused.
    let again = browser.get(&callback).expect(400);
    assert!(
        again.contains("This login link has expired or was already used"),
        "{}",
        again.body
    );
    assert!(again.session_set_cookie().is_none());
    s.expect_refusal_audited("owner.login", "login_state_invalid");
    // Another browser lacks the login's binding cookie and is refused before the state is
    // even looked up.
    let elsewhere = Browser::anonymous(&s).get(&callback).expect(400);
    assert!(elsewhere.session_set_cookie().is_none());

    // A made-up state is refused the same way, before GitHub is asked anything.
    let forged = Browser::anonymous(&s)
        .get("/console/callback/github?code=octocat.x&state=forged")
        .expect(400);
    assert!(forged.session_set_cookie().is_none());
    s.expect_refusals_audited("owner.login", "login_not_bound", 2);
    // One login only.
    assert_eq!(
        s.wait_for_audit_count(1, |e| e.event == "owner.login" && e.outcome == "success"),
        1
    );
}

#[test]
fn a_github_callback_completes_only_in_the_browser_that_started_the_login() {
    // Login CSRF (RFC 6749 §10.12): mallory starts a login with her own GitHub account and
    // sends the callback link to alice. If alice's browser completed it, alice would be
    // logged in as mallory without noticing, and the agent she then claims would be
    // mallory's. The callback must be bound to the browser that started the login.
    let standin = GithubStandIn::start();
    let s = github_server(&standin);
    let mut mallory = Browser::anonymous(&s);
    let callback = github_callback(&mut mallory, &standin, "octocat", "/claim");

    let alice = Browser::anonymous(&s);
    let page = alice.get(&callback).expect(400);
    assert!(
        page.session_set_cookie().is_none(),
        "{:?}",
        page.set_cookies
    );
    s.expect_refusal_audited("owner.login", "login_not_bound");
}

// ---- 8. sessions and headers ------------------------------------------------------------

#[test]
fn logout_ends_the_session_for_good() {
    let s = console_server();
    let alice = Browser::dev_login(&s, "alice");
    let csrf = alice.csrf();
    let page = alice
        .post("/console/logout", &[("csrf", &csrf)])
        .expect_see_other("/");
    let removal = page.session_set_cookie().expect("the cookie is removed");
    assert_eq!(cookie_value(removal), "");
    assert!(removal.contains("Max-Age=0"), "{removal}");

    // The old cookie is worth nothing now, even with its CSRF token.
    alice
        .get("/console")
        .expect_see_other("/console/login?return_to=%2Fconsole");
    alice
        .get("/claim?user_code=BCDF-GHJK")
        .expect_see_other("/console/login?return_to=%2Fclaim%3Fuser_code%3DBCDF-GHJK");
    alice
        .post(
            "/console/kill-switch",
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .expect_see_other("/console/login");
    alice
        .post("/console/logout", &[("csrf", &csrf)])
        .expect_see_other("/console/login");
    let login = alice.get("/console/login").expect(200);
    assert!(!login.contains(ALICE));
    assert!(
        !login.contains("class=\"who\""),
        "no one is named in the header after logout"
    );

    // A new login is a new session with a new cookie and CSRF token.
    let again = Browser::dev_login(&s, "alice");
    assert!(again.session().is_some());
    assert_ne!(again.session(), alice.session());
    assert_ne!(again.csrf(), csrf);
}

#[test]
fn console_pages_carry_security_headers() {
    let s = console_server();
    let p = register_pending(&s, json!({}));
    let alice = Browser::dev_login(&s, "alice");
    let csrf = alice.csrf();
    let pages = [
        Browser::anonymous(&s).get("/console/login").expect(200),
        Browser::anonymous(&s).get("/console").expect(303),
        alice.get("/console").expect(200),
        alice
            .get(&format!("/claim?user_code={}", p.user_code))
            .expect(200),
        alice.get("/claim?user_code=BCDF-GHJB").expect(404),
        alice
            .post("/console/kill-switch", &[("csrf", "wrong")])
            .expect(403),
        alice
            .post("/console/kill-switch", &[("csrf", &csrf)])
            .expect(400),
    ];
    for page in &pages {
        let csp = page.header("content-security-policy");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(!csp.contains("unsafe-eval"), "{csp}");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("form-action 'self'"), "{csp}");
        assert_eq!(page.header("x-frame-options"), "DENY");
        assert_eq!(page.header("referrer-policy"), "no-referrer");
        assert_eq!(page.header("x-content-type-options"), "nosniff");
        assert_eq!(page.header("cache-control"), "no-store");
        if page.status != 303 {
            assert!(
                page.header("content-type").starts_with("text/html"),
                "{}",
                page.header("content-type")
            );
            // No inline script or style the CSP would have to allow.
            assert!(!page.contains("<script"));
            assert!(!page.contains("<style"));
            assert!(!page.contains(" style=\""));
        }
    }
}

// ---- 9. kill switch ---------------------------------------------------------------------

#[test]
fn the_kill_switch_revokes_every_token_of_the_owners_agents_once_confirmed() {
    let s = console_server();
    let alice = Browser::dev_login(&s, "alice");
    let _bob = Browser::dev_login(&s, "bob");
    let a1 = owned_agent(&s, ALICE, "Alice one", json!({SKILL: "read"}));
    let a2 = owned_agent(&s, ALICE, "Alice two", json!({SKILL: "write"}));
    let b = owned_agent(&s, BOB, "Bob one", json!({SKILL: "read"}));
    let t1 = a1.agent_token(&s);
    let skill1 = a1.skill_token(&s, SKILL);
    let t2 = a2.agent_token(&s);
    let tb = b.agent_token(&s);
    let csrf = alice.csrf();

    // Without the confirmation box: 400, nothing revoked.
    for form in [
        vec![("csrf", csrf.as_str())],
        vec![("csrf", csrf.as_str()), ("confirm", "no")],
    ] {
        let page = alice.post("/console/kill-switch", &form).expect(400);
        assert!(page.contains("Not confirmed"), "{}", page.body);
    }
    assert!(is_active(&a1, &s, &t1));
    assert!(is_active(&a1, &s, &skill1));
    assert!(is_active(&a2, &s, &t2));
    a1.exchange_ok(&s, &t1, SKILL);

    // Confirmed: every token of alice's agents stops working; bob's do not.
    let page = alice
        .post(
            "/console/kill-switch",
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .expect(200);
    assert!(page.contains("All tokens revoked"), "{}", page.body);
    s.wait_for_audit(|e| {
        e.event == "owner.revoke_all"
            && e.outcome == "success"
            && e.owner_id.as_deref() == Some(ALICE)
    });
    assert!(!is_active(&a1, &s, &t1));
    assert!(!is_active(&a1, &s, &skill1));
    assert!(!is_active(&a2, &s, &t2));
    assert_oauth_error(a1.exchange(&s, &t1, SKILL), 400, "invalid_grant");
    assert!(is_active(&b, &s, &tb), "another owner's token was revoked");
    // The agents themselves stay active and may ask for new tokens (from the next second).
    assert_eq!(status_of(&s, &a1.client_id).0, "active");
    std::thread::sleep(Duration::from_millis(1100));
    let fresh = a1.agent_token(&s);
    assert!(is_active(&a1, &s, &fresh));
}

// ---- enrollment tokens and skills from the console ----------------------------------------

/// Mints an enrollment token on the dashboard with `grants` (audience, scopes); returns the
/// page and the token, if one was shown.
fn mint_enrollment(b: &Browser, grants: &[(&str, &str)]) -> (Page, Option<String>) {
    let csrf = b.csrf();
    let fields: Vec<(String, String)> = grants
        .iter()
        .map(|(aud, scopes)| (format!("scopes:{aud}"), (*scopes).to_owned()))
        .collect();
    let mut form = vec![("csrf", csrf.as_str()), ("uses", "1"), ("hours", "1")];
    for (aud, _) in grants {
        form.push(("grant", aud));
    }
    for (k, v) in &fields {
        form.push((k.as_str(), v.as_str()));
    }
    let page = b.post("/console/enrollment", &form);
    let token = page.body.find("<pre class=\"secret\">").map(|i| {
        let rest = &page.body[i + "<pre class=\"secret\">".len()..];
        rest[..rest.find("</pre>").expect("</pre>")].to_owned()
    });
    (page, token)
}

/// Registers an agent with an enrollment token; returns it and the registration.
fn register_enrolled(s: &TestServer, token: &str) -> (Agent, Value) {
    let key = AgentKey::generate();
    let r = s
        .http
        .post(s.url("/register"))
        .bearer_auth(token)
        .json(&agent_metadata(&key))
        .send()
        .expect("POST /register");
    assert_eq!(r.status(), 201);
    let registration: Value = r.json().expect("registration JSON");
    let agent = Agent {
        key,
        dpop_key: AgentKey::generate(),
        client_id: registration["client_id"]
            .as_str()
            .expect("client_id")
            .to_owned(),
    };
    (agent, registration)
}

#[test]
fn an_enrollment_token_from_the_console_links_the_agent_to_its_owner_with_the_chosen_grants() {
    let s = console_server();
    let alice = Browser::dev_login(&s, "alice");
    let (page, token) = mint_enrollment(&alice, &[(SKILL, "read")]);
    let page = page.expect(200);
    let token = token.unwrap_or_else(|| panic!("no token shown:\n{}", page.body));
    assert!(token.starts_with("patron_iat_"), "{token}");
    s.wait_for_audit(|e| {
        e.event == "enrollment.mint"
            && e.outcome == "success"
            && e.owner_id.as_deref() == Some(ALICE)
    });

    let (agent, registration) = register_enrolled(&s, &token);
    assert_eq!(registration["owner_status"], "active");
    assert!(registration.get("user_code").is_none());
    assert_eq!(
        status_of(&s, &agent.client_id),
        ("active".into(), Some(ALICE.into()))
    );
    assert_eq!(
        grants_of(&s, &agent.client_id),
        vec![(SKILL.to_owned(), "read".to_owned())]
    );
    assert_eq!(claims_of(&agent.skill_token(&s, SKILL))["scope"], "read");
    assert!(alice.get("/console").expect(200).contains(&agent.client_id));
}

#[test]
fn an_enrollment_token_from_the_console_cannot_grant_scopes_the_skill_does_not_offer() {
    // The claim form and the grants form keep grants within the skill's scopes
    // (`grant_scope_unknown`). An enrollment token minted on the dashboard must too, or any
    // owner can give an agent skill tokens with scopes the skill never offered.
    let s = console_server();
    let alice = Browser::dev_login(&s, "alice");
    let (page, token) = mint_enrollment(&alice, &[(SKILL, "read admin")]);
    let page = page.expect(400);
    assert!(
        token.is_none(),
        "an enrollment token granting `read admin` was minted:\n{}",
        page.body
    );
    assert!(page.contains("scopes for"), "{}", page.body);
    let stored: i64 = enrollment_tokens::table
        .count()
        .get_result(&mut s.db.connect())
        .expect("count enrollment tokens");
    assert_eq!(stored, 0, "nothing was stored");
}

#[test]
fn an_owner_cannot_take_over_a_skill_that_is_not_theirs() {
    let s = console_server();
    let alice = Browser::dev_login(&s, "alice");
    let bob = Browser::dev_login(&s, "bob");
    let own = "https://alice-skill.example/api";
    let add = |b: &Browser, audience: &str, scopes: &str| -> Page {
        let csrf = b.csrf();
        b.post(
            "/console/skills",
            &[
                ("csrf", &csrf),
                ("audience", audience),
                ("name", "Mine now"),
                ("scopes", scopes),
                ("ttl_secs", "300"),
            ],
        )
    };
    add(&alice, own, "read").expect_see_other("/console");
    let skill = |aud: &str| {
        skills::find(&mut s.db.connect(), aud)
            .expect("read skill")
            .expect("skill exists")
    };
    assert_eq!(skill(own).owner_id.as_deref(), Some(ALICE));

    // Neither alice's skill nor the operator's can be redefined by another owner.
    for audience in [own, SKILL] {
        let before = skill(audience);
        let page = add(&bob, audience, "read write admin").expect(400);
        assert!(
            page.contains("a skill with this audience already exists and is not yours"),
            "{}",
            page.body
        );
        let after = skill(audience);
        assert_eq!(
            (after.scopes, after.name, after.owner_id),
            (before.scopes, before.name, before.owner_id)
        );
    }
    s.expect_refusals_audited("skill.put", "skill_not_owned", 2);
    // Alice may change her own.
    add(&alice, own, "read write").expect_see_other("/console");
    assert_eq!(skill(own).scopes, "read write");
}

#[test]
fn an_owner_lists_the_audiences_a_skill_may_delegate_to() {
    let s = console_server();
    let alice = Browser::dev_login(&s, "alice");
    let own = "https://alice-skill.example/api";
    let add = |delegates: &str| -> Page {
        let csrf = alice.csrf();
        alice.post(
            "/console/skills",
            &[
                ("csrf", &csrf),
                ("audience", own),
                ("name", "Mine"),
                ("scopes", "read"),
                ("ttl_secs", "300"),
                ("delegate_audiences", delegates),
            ],
        )
    };
    let stored = || skills::find(&mut s.db.connect(), own).expect("read skill");

    let page = add("https://mail.example/api, not-a-uri").expect(400);
    assert!(
        page.contains("each of delegate_audiences must be an absolute URI"),
        "{}",
        page.body
    );
    assert_eq!(stored(), None, "nothing stored");
    s.expect_refusal_audited("skill.put", "skill_delegate_invalid");

    add("https://mail.example/api,\nhttps://b.example/ ").expect_see_other("/console");
    assert_eq!(
        stored().expect("skill stored").delegate_audiences,
        "https://mail.example/api https://b.example/"
    );
    let dashboard = alice.get("/console").expect(200);
    assert!(
        dashboard.contains("<code>https://mail.example/api https://b.example/</code>"),
        "{}",
        dashboard.body
    );
    // Left empty, the skill delegates to nothing.
    add("").expect_see_other("/console");
    assert_eq!(stored().expect("skill stored").delegate_audiences, "");
}

// ---- 10. rejection ----------------------------------------------------------------------

#[test]
fn rejecting_a_pending_agent_deletes_its_registration() {
    let s = console_server();
    let p = register_pending(&s, json!({}));
    let other = register_pending(&s, json!({}));
    let uri = p.registration["registration_client_uri"]
        .as_str()
        .expect("registration_client_uri")
        .to_owned();
    let rat = p.registration["registration_access_token"]
        .as_str()
        .expect("registration_access_token")
        .to_owned();
    let r = s.http.get(&uri).bearer_auth(&rat).send().expect("GET");
    assert_eq!(r.status(), 200, "the registration is readable before");

    let alice = Browser::dev_login(&s, "alice");
    alice
        .get(&format!("/claim?user_code={}", p.user_code))
        .expect(200);
    let csrf = alice.csrf();
    let page = alice
        .post(
            "/claim",
            &[
                ("csrf", &csrf),
                ("user_code", &p.user_code),
                ("action", "reject"),
            ],
        )
        .expect(200);
    assert!(
        page.contains("The registration was deleted."),
        "{}",
        page.body
    );
    assert!(stored(&s, &p.agent.client_id).is_none());
    assert!(
        stored(&s, &other.agent.client_id).is_some(),
        "only that one"
    );
    s.wait_for_audit(|e| {
        e.event == "agent.reject"
            && e.outcome == "success"
            && e.client_id.as_deref() == Some(p.agent.client_id.as_str())
            && e.owner_id.as_deref() == Some(ALICE)
    });

    let r = s.http.get(&uri).bearer_auth(&rat).send().expect("GET");
    assert_oauth_error(r, 401, "invalid_token");
    let again = alice
        .get(&format!("/claim?user_code={}", p.user_code))
        .expect(404);
    assert!(again.contains("No pending agent has this code"));
    // The agent cannot get tokens either.
    let refused = p.agent.token(&s, &[("grant_type", "client_credentials")]);
    assert_eq!(refused.status(), 401);
}

// ---- suspension by an admin, concurrent claims -------------------------------------------

#[test]
fn an_owner_cannot_resume_an_agent_an_admin_suspended() {
    let s = console_server();
    let alice = Browser::dev_login(&s, "alice");
    let a = owned_agent(&s, ALICE, "Alice mailer", json!({SKILL: "read"}));
    let path = format!("/console/agents/{}", a.client_id);
    s.admin_ok(
        "POST",
        &format!("/admin/agents/{}/suspend", a.client_id),
        None,
    );

    // The page says why there is no Resume button, and a forged resume changes nothing.
    let page = alice.get(&path).expect(200);
    assert!(
        page.contains("Only an administrator can resume it"),
        "{}",
        page.body
    );
    assert!(!page.contains("value=\"resume\""));
    let refused = alice.submit_from(&path, &path, &[("action", "resume")]);
    assert_ne!(refused.status, 303, "{}", refused.body);
    assert!(refused.contains("only an administrator can resume it"));
    assert_eq!(status_of(&s, &a.client_id).0, "suspended");
    s.expect_refusal_audited("agent.resume", "suspended_by_admin");
    // Suspending it again does not turn it into the owner's suspension.
    alice
        .submit_from(&path, &path, &[("action", "suspend")])
        .expect_see_other(&path);
    assert_eq!(
        stored(&s, &a.client_id).unwrap().suspended_by.as_deref(),
        Some("admin")
    );

    // An admin lifts it; then the owner's own suspension is the owner's to lift.
    s.admin_ok(
        "POST",
        &format!("/admin/agents/{}/resume", a.client_id),
        None,
    );
    assert_eq!(status_of(&s, &a.client_id).0, "active");
    alice
        .submit_from(&path, &path, &[("action", "suspend")])
        .expect_see_other(&path);
    assert_eq!(
        stored(&s, &a.client_id).unwrap().suspended_by.as_deref(),
        Some("owner")
    );
    assert!(alice.get(&path).expect(200).contains("value=\"resume\""));
    alice
        .submit_from(&path, &path, &[("action", "resume")])
        .expect_see_other(&path);
    assert_eq!(status_of(&s, &a.client_id).0, "active");
}

#[test]
fn a_console_admin_resumes_an_agent_an_admin_suspended() {
    let s = console_builder()
        .env("PATRON_CONSOLE__ADMINS", "[\"dev:root\"]")
        .start();
    s.add_skill(SKILL, "read write", 120, false, None);
    let root = Browser::dev_login(&s, "root");
    let a = owned_agent(&s, ALICE, "Alice mailer", json!({SKILL: "read"}));
    let path = format!("/console/agents/{}", a.client_id);
    s.admin_ok(
        "POST",
        &format!("/admin/agents/{}/suspend", a.client_id),
        None,
    );
    assert!(root.get(&path).expect(200).contains("value=\"resume\""));
    root.submit_from(&path, &path, &[("action", "resume")])
        .expect_see_other(&path);
    assert_eq!(status_of(&s, &a.client_id).0, "active");
}

#[test]
fn of_two_concurrent_claims_of_one_agent_exactly_one_succeeds() {
    let s = console_server();
    let p = register_pending(&s, json!({}));
    let claim_path = format!("/claim?user_code={}", p.user_code);
    let alice = Browser::dev_login(&s, "alice");
    let bob = Browser::dev_login(&s, "bob");
    let forms: Vec<(&Browser, String)> = [&alice, &bob]
        .into_iter()
        .map(|b| (b, b.get(&claim_path).expect(200).csrf()))
        .collect();
    let barrier = std::sync::Barrier::new(forms.len());
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = forms
            .iter()
            .map(|(b, csrf)| {
                let (barrier, code) = (&barrier, p.user_code.as_str());
                scope.spawn(move || {
                    barrier.wait();
                    b.post(
                        "/claim",
                        &[("csrf", csrf), ("user_code", code), ("action", "approve")],
                    )
                    .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 303).count(),
        1,
        "{statuses:?}"
    );
    let (status, owner) = status_of(&s, &p.agent.client_id);
    assert_eq!(status, "active");
    let winner = if statuses[0] == 303 { ALICE } else { BOB };
    assert_eq!(owner.as_deref(), Some(winner));
    // The loser is refused at the lookup, or (when both passed it) inside the write.
    s.wait_for_audit(|e| {
        e.outcome == "failure"
            && matches!(
                e.reason.as_deref(),
                Some("agent_not_pending" | "user_code_unknown")
            )
    });
    assert_eq!(
        s.wait_for_audit_count(1, |e| e.event == "agent.approve" && e.outcome == "success"),
        1
    );
}
