//! Skill audiences are canonical and proven: a variant of an existing audience is a
//! duplicate, and a skill an owner creates is unusable until the resource at its audience
//! publishes RFC 9728 protected resource metadata naming it and Patron (checked again from
//! the console, the admin API or the CLI). An administrator's skill needs no proof.

use std::process::Command;

use patron::store::models::skills::{self, SkillRow};
use serde_json::{Value, json};

use crate::helpers::console::{Browser, Page, console_builder};
use crate::helpers::https::{HttpsFiles, https_files};
use crate::helpers::{ADMIN, Agent, TestServer, assert_oauth_error, claims_of};

const ALICE: &str = "dev:alice";
const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// A console server that may fetch from `files`, requiring proof as production does
/// (development mode leaves it off by default).
fn server(files: &HttpsFiles) -> TestServer {
    files
        .trusted_by(console_builder().env("PATRON_TOKENS__REQUIRE_AUDIENCE_PROOF", "true"))
        .start()
}

fn add_skill(b: &Browser, audience: &str) -> Page {
    b.submit_from(
        "/console",
        "/console/skills",
        &[
            ("audience", audience),
            ("name", "Owner's skill"),
            ("scopes", "read write"),
            ("ttl_secs", "300"),
        ],
    )
}

fn stored(s: &TestServer, audience: &str) -> Option<SkillRow> {
    skills::find(&mut s.db.connect(), audience).expect("read skill")
}

fn skill_count(s: &TestServer) -> usize {
    skills::all(&mut s.db.connect()).expect("read skills").len()
}

/// An agent of alice granted `read` on `audience` (through the admin API).
fn alices_agent(s: &TestServer, audience: &str) -> Agent {
    let agent = Agent::register(s);
    agent.approve(s, ALICE, json!({ audience: "read" }));
    agent
}

fn token_for(s: &TestServer, agent: &Agent, resource: &str) -> reqwest::blocking::Response {
    agent.token(
        s,
        &[("grant_type", "client_credentials"), ("resource", resource)],
    )
}

fn expect_unproven(s: &TestServer, agent: &Agent, resource: &str) {
    let body = assert_oauth_error(token_for(s, agent, resource), 400, "invalid_target");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("has not proven its audience")),
        "{body}"
    );
    s.expect_refusal_audited("token.issue", "skill_unproven");
}

fn metadata(resource: &str, authorization_server: &str) -> String {
    json!({ "resource": resource, "authorization_servers": [authorization_server] }).to_string()
}

/// `patron admin skill check <audience>` against `s`.
fn cli_check(s: &TestServer, audience: &str) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_patron"))
        .args(["admin", "--server", &s.base, "skill", "check", audience])
        .env_clear()
        .env("PATRON_ADMIN_TOKEN", ADMIN)
        .output()
        .expect("run patron admin skill check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_owners_skill_is_unusable_until_its_resource_publishes_matching_metadata_and_check_again_is_pressed()
 {
    let files = https_files();
    let s = server(&files);
    let alice = Browser::dev_login(&s, "alice");
    let audience = format!("{}/mcp", files.base());
    let published_at = format!("{WELL_KNOWN}/mcp");

    // Created, but nothing is published yet: the proof fails and is recorded.
    add_skill(&alice, &audience).expect_see_other("/console");
    let skill = stored(&s, &audience).expect("the skill is stored");
    assert_eq!(skill.owner_id.as_deref(), Some(ALICE));
    assert_eq!(skill.proven_at, None);
    let error = skill.proof_error.expect("the failure is recorded");
    assert!(error.contains("HTTP status 404"), "{error}");
    let attempt = s.wait_for_audit(|e| e.event == "skill.proof" && e.outcome == "failure");
    assert_eq!(attempt.reason.as_deref(), Some("proof_fetch_failed"));
    assert_eq!(attempt.audience.as_deref(), Some(audience.as_str()));
    assert_eq!(attempt.owner_id.as_deref(), Some(ALICE));

    // An agent granted it gets no token for it.
    let agent = alices_agent(&s, &audience);
    expect_unproven(&s, &agent, &audience);

    // The dashboard says what to publish, where, and why the last check failed.
    let dashboard = alice.get("/console").expect(200);
    let text = dashboard.shown_text();
    assert!(text.contains("not proven"), "{text}");
    assert!(
        text.contains(&format!("{}{published_at}", files.base())),
        "{text}"
    );
    assert!(text.contains("HTTP status 404"), "{text}");
    assert!(
        text.contains(&format!(
            "\"authorization_servers\": [\n    \"{}\"\n  ]",
            s.base
        )),
        "the document names this server as its authorization server:\n{text}"
    );

    // Another owner can neither check it nor see its proof.
    let bob = Browser::dev_login(&s, "bob");
    assert!(!bob.get("/console").expect(200).contains(&published_at));
    let page = bob
        .submit_from(
            "/console",
            "/console/skills/check",
            &[("audience", &audience)],
        )
        .expect(400);
    assert!(page.contains("this skill is not yours"), "{}", page.body);
    s.expect_refusal_audited("skill.proof", "skill_not_owned");

    // Publishing is not enough: nothing is fetched until someone checks again.
    files.publish(&published_at, &metadata(&audience, &s.base));
    expect_unproven(&s, &agent, &audience);

    alice
        .submit_from(
            "/console",
            "/console/skills/check",
            &[("audience", &audience)],
        )
        .expect_see_other("/console");
    let skill = stored(&s, &audience).expect("the skill is stored");
    assert!(skill.proven_at.is_some());
    assert_eq!(skill.proof_error, None);
    s.wait_for_audit(|e| {
        e.event == "skill.proof"
            && e.outcome == "success"
            && e.audience.as_deref() == Some(audience.as_str())
    });
    let token = agent.skill_token(&s, &audience);
    assert_eq!(claims_of(&token)["aud"], audience);
    assert!(
        alice
            .get("/console")
            .expect(200)
            .shown_text()
            .contains("proven")
    );
}

#[test]
fn an_owners_skill_stays_unusable_while_its_metadata_names_another_server_or_resource() {
    let files = https_files();
    let s = server(&files);
    let alice = Browser::dev_login(&s, "alice");
    let audience = format!("{}/files", files.base());
    let published_at = format!("{WELL_KNOWN}/files");
    files.publish(
        &published_at,
        &metadata(&audience, "https://other-as.example"),
    );
    add_skill(&alice, &audience).expect_see_other("/console");
    s.expect_refusal_audited("skill.proof", "proof_issuer_missing");
    let agent = alices_agent(&s, &audience);
    expect_unproven(&s, &agent, &audience);

    // The admin API checks again, and says why it still fails.
    let check = |s: &TestServer| {
        s.admin(
            "POST",
            "/admin/skills/check",
            Some(json!({"audience": audience})),
        )
    };
    let body = assert_oauth_error(check(&s), 400, "invalid_target");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("authorization_servers does not list")),
        "{body}"
    );
    s.expect_refusals_audited("skill.proof", "proof_issuer_missing", 2);
    expect_unproven(&s, &agent, &audience);

    // Naming this server for another resource proves nothing either.
    files.publish(
        &published_at,
        &metadata(&format!("{}/other", files.base()), &s.base),
    );
    assert_oauth_error(check(&s), 400, "invalid_target");
    s.expect_refusal_audited("skill.proof", "proof_resource_mismatch");
    let skill = stored(&s, &audience).expect("the skill is stored");
    assert_eq!(skill.proven_at, None);
    assert!(
        skill
            .proof_error
            .as_deref()
            .is_some_and(|e| e.contains("/other")),
        "{:?}",
        skill.proof_error
    );
    expect_unproven(&s, &agent, &audience);
    let (ok, _, stderr) = cli_check(&s, &audience);
    assert!(!ok, "the CLI reports the failure");
    assert!(
        stderr.contains("proof_resource_mismatch") || stderr.contains("not proven"),
        "{stderr}"
    );

    // The CLI check succeeds once the document is right; the skill is usable at once.
    files.publish(&published_at, &metadata(&audience, &s.base));
    let (ok, stdout, stderr) = cli_check(&s, &audience);
    assert!(ok, "{stdout}{stderr}");
    let answer: Value = serde_json::from_str(&stdout).expect("the CLI prints JSON");
    assert_eq!(answer["usable"], true, "{answer}");
    assert_eq!(answer["proof_error"], Value::Null);
    agent.skill_token(&s, &audience);

    // The last attempt decides: withdrawn metadata makes the skill unusable again.
    files.publish(
        &published_at,
        &metadata(&audience, "https://other-as.example"),
    );
    assert_oauth_error(check(&s), 400, "invalid_target");
    expect_unproven(&s, &agent, &audience);
}

#[test]
fn variants_of_an_existing_audience_are_refused_as_duplicates() {
    let files = https_files();
    let s = server(&files);
    let admins = s.admin_ok(
        "POST",
        "/admin/skills",
        Some(json!({"audience": "https://api.bank.example/", "name": "Bank", "scopes": "read"})),
    );
    assert_eq!(admins["audience"], "https://api.bank.example/");

    let alice = Browser::dev_login(&s, "alice");
    for variant in [
        "HTTPS://API.BANK.EXAMPLE",
        "https://api.bank.example",
        "https://Api.Bank.Example:443/",
    ] {
        let page = add_skill(&alice, variant).expect(400);
        assert!(
            page.contains(
                "names the same resource as the existing skill https://api.bank.example/"
            ),
            "{variant}: {}",
            page.body
        );
    }
    s.expect_refusals_audited("skill.put", "audience_duplicate", 3);
    // Another path is another resource.
    add_skill(&alice, "https://api.bank.example/alice").expect_see_other("/console");
    let own = "https://api.bank.example/alice";
    assert_eq!(
        stored(&s, own).expect("stored").owner_id.as_deref(),
        Some(ALICE)
    );
    let bob = Browser::dev_login(&s, "bob");
    add_skill(&bob, "https://API.bank.example:443/alice").expect(400);
    s.expect_refusals_audited("skill.put", "audience_duplicate", 4);
    assert_eq!(skill_count(&s), 2);
    let bank = stored(&s, "https://api.bank.example/").expect("stored");
    assert_eq!((bank.name.as_str(), bank.owner_id), ("Bank", None));

    // Its operator replacing it in another spelling replaces that skill, stored as it was.
    s.admin_ok(
        "POST",
        "/admin/skills",
        Some(json!({"audience": "HTTPS://API.BANK.EXAMPLE", "name": "Bank v2", "scopes": "read"})),
    );
    assert_eq!(skill_count(&s), 2);
    assert_eq!(
        stored(&s, "https://api.bank.example/")
            .expect("stored")
            .name,
        "Bank v2"
    );
    // A new audience is stored canonical; one with user information is refused.
    let created = s.admin_ok(
        "POST",
        "/admin/skills",
        Some(json!({"audience": "HTTPS://Mail.Example:443", "name": "Mail", "scopes": "send"})),
    );
    assert_eq!(created["audience"], "https://mail.example/");
    assert_oauth_error(
        s.admin(
            "POST",
            "/admin/skills",
            Some(json!({"audience": "https://user@files.example/", "name": "F", "scopes": "read"})),
        ),
        400,
        "invalid_request",
    );
    s.expect_refusal_audited("skill.put", "audience_invalid");
    assert_eq!(skill_count(&s), 3);
}

#[test]
fn an_admins_skill_works_at_once_and_answers_to_variants_of_its_audience() {
    let s = TestServer::with_admin();
    s.add_skill("https://skill.example/api", "read write", 300, false, None);
    let agent = Agent::register(&s);
    // A grant naming a variant is stored under the skill's audience.
    agent.approve(&s, ALICE, json!({"HTTPS://SKILL.EXAMPLE:443/api": "read"}));
    let token = agent.skill_token(&s, "https://skill.example/api");
    assert_eq!(claims_of(&token)["aud"], "https://skill.example/api");
    assert_eq!(claims_of(&token)["scope"], "read");
    // A token request naming a variant finds the skill; the token names its audience.
    let token = agent.skill_token(&s, "HTTPS://Skill.Example/api");
    assert_eq!(claims_of(&token)["aud"], "https://skill.example/api");
    // Another path is not a variant.
    assert_oauth_error(
        token_for(&s, &agent, "https://skill.example/api/"),
        400,
        "invalid_target",
    );
    s.expect_refusal_audited("token.issue", "audience_unknown");
    let listed = s.admin_ok("GET", "/admin/skills", None);
    assert_eq!(listed["skills"][0]["usable"], true, "{listed}");
}
