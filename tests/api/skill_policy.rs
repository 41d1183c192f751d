//! Skills belong to someone: every grant, from any path, is checked against the skill's
//! grant policy; its operator (and admins) manage the policy and the grants it admits.

use diesel::prelude::*;
use diesel::sql_query;
use serde_json::{Value, json};

use crate::helpers::console::{Browser, console_builder};
use crate::helpers::{Agent, TestServer, assert_oauth_error};

const TEAM: &str = "https://team.example/files";
const OPEN: &str = "https://open.example/files";

/// A skill made through the admin API with `policy`.
fn skill(s: &TestServer, audience: &str, scopes: &str, policy: &[&str]) -> Value {
    s.admin_ok(
        "POST",
        "/admin/skills",
        Some(json!({
            "audience": audience, "name": "Files", "scopes": scopes,
            "grantable_by": policy,
        })),
    )
}

fn grants(s: &TestServer, client_id: &str) -> Vec<(String, String)> {
    patron::store::models::grants::for_client(&mut s.db.connect(), client_id)
        .expect("grants")
        .into_iter()
        .map(|g| (g.audience, g.scopes))
        .collect()
}

fn pending(s: &TestServer) -> (Agent, String) {
    let a = Agent::register(s);
    let code = patron::store::models::clients::find(&mut s.db.connect(), &a.client_id)
        .expect("read")
        .and_then(|r| r.user_code)
        .expect("a pending agent has a user code");
    (a, code)
}

fn approve_via_admin(
    s: &TestServer,
    a: &Agent,
    owner: &str,
    grants: Value,
) -> reqwest::blocking::Response {
    s.admin(
        "POST",
        &format!("/admin/agents/{}/approve", a.client_id),
        Some(json!({"owner": owner, "grants": grants})),
    )
}

#[test]
fn an_owner_outside_a_skills_policy_can_neither_claim_edit_mint_nor_be_approved_for_it() {
    let s = console_builder().start();
    skill(&s, TEAM, "files:read files:write", &["owner:dev:alice"]);
    skill(&s, OPEN, "files:read files:write", &["any=files:read"]);
    let bob = Browser::dev_login(&s, "bob");

    // The review page offers bob only what he may grant, and only those scopes.
    let (agent, code) = pending(&s);
    let review = bob.get(&format!("/claim?user_code={code}")).expect(200);
    assert!(review.contains(OPEN), "{}", review.body);
    assert!(!review.contains(TEAM), "{}", review.body);
    assert_eq!(
        review.input(&format!("scopes:{OPEN}")).as_deref(),
        Some("files:read")
    );

    // Claiming with the team skill anyway is refused, and nothing changes.
    let page = bob.approve(&code, &[(TEAM, "files:read")]).expect(400);
    assert!(page.contains("does not admit"), "{}", page.body);
    s.expect_refusal_audited("grant.refused", "grant_not_permitted");
    s.expect_refusal_audited("agent.approve", "grant_not_permitted");
    assert!(grants(&s, &agent.client_id).is_empty());
    // A scope beyond the entry's cap is refused too.
    bob.approve(&code, &[(OPEN, "files:write")]).expect(400);
    assert!(grants(&s, &agent.client_id).is_empty());
    // Within the policy, the claim works.
    bob.approve(&code, &[(OPEN, "files:read")])
        .expect_see_other(&format!("/console/agents/{}", agent.client_id));
    assert_eq!(
        grants(&s, &agent.client_id),
        vec![(OPEN.to_owned(), "files:read".to_owned())]
    );

    // Editing the agent's grants toward the team skill is refused; the grants stay.
    let path = format!("/console/agents/{}", agent.client_id);
    let scopes_field = format!("scopes:{TEAM}");
    let page = bob
        .submit_from(
            &path,
            &path,
            &[
                ("action", "grants"),
                ("grant", TEAM),
                (&scopes_field, "files:read"),
            ],
        )
        .expect(400);
    assert!(page.contains("does not admit"), "{}", page.body);
    assert_eq!(
        grants(&s, &agent.client_id),
        vec![(OPEN.to_owned(), "files:read".to_owned())]
    );

    // Minting an enrollment token for it is refused, and no token exists.
    let page = bob
        .submit_from(
            "/console",
            "/console/enrollment",
            &[
                ("grant", TEAM),
                (&scopes_field, "files:read"),
                ("uses", "1"),
            ],
        )
        .expect(400);
    assert!(!page.contains("patron_iat_"), "{}", page.body);
    let minted: i64 = patron::store::schema::enrollment_tokens::table
        .count()
        .get_result(&mut s.db.connect())
        .expect("count");
    assert_eq!(minted, 0);

    // The admin API refuses to approve bob's agent for it, and admits alice's.
    let (other, _) = pending(&s);
    let body = assert_oauth_error(
        approve_via_admin(&s, &other, "dev:bob", json!({TEAM: "files:read"})),
        400,
        "invalid_request",
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or_default()
            .contains("does not admit"),
        "{body}"
    );
    assert!(grants(&s, &other.client_id).is_empty());
    let r = approve_via_admin(
        &s,
        &other,
        "dev:alice",
        json!({TEAM: "files:read files:write"}),
    );
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
}

#[test]
fn domain_entries_admit_owners_by_their_verified_address_and_caps_add_up() {
    let s = console_builder().start();
    // Development logins are recorded as <name>@dev.invalid.
    skill(
        &s,
        TEAM,
        "files:read files:write files:admin",
        &["any=files:read", "domain:dev.invalid=files:write"],
    );
    let carol = Browser::dev_login(&s, "carol");
    let (agent, code) = pending(&s);
    carol
        .approve(&code, &[(TEAM, "files:read files:write")])
        .expect_see_other(&format!("/console/agents/{}", agent.client_id));
    // No entry admits files:admin.
    let (other, code) = pending(&s);
    carol.approve(&code, &[(TEAM, "files:admin")]).expect(400);
    assert!(grants(&s, &other.client_id).is_empty());
    // An owner id outside the domain gets only what `any` admits.
    let body = assert_oauth_error(
        approve_via_admin(&s, &other, "github:77", json!({TEAM: "files:write"})),
        400,
        "invalid_request",
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or_default()
            .contains("admits this owner only to: files:read"),
        "{body}"
    );
}

#[test]
fn narrowing_a_policy_trims_grants_and_revokes_the_tokens_issued_under_them() {
    let s = console_builder().start();
    skill(&s, TEAM, "files:read files:write", &["any"]);
    skill(&s, OPEN, "files:read", &["any"]);
    let a = Agent::register(&s);
    a.approve(
        &s,
        "github:42",
        json!({TEAM: "files:read files:write", OPEN: "files:read"}),
    );
    let keeper = Agent::register(&s);
    keeper.approve(&s, "github:43", json!({TEAM: "files:read"}));
    let token = a.skill_token(&s, TEAM);
    assert_eq!(a.introspect(&s, &token)["active"], true);

    // github:42 keeps only files:read of TEAM; github:43 is untouched.
    let out = s.admin_ok(
        "POST",
        "/admin/skills/policy",
        Some(json!({"audience": TEAM, "grantable_by": ["any=files:read"]})),
    );
    assert_eq!(out["grants_changed"], 1, "{out}");
    assert_eq!(out["grantable_by"], json!(["any=files:read"]));
    let mut g = grants(&s, &a.client_id);
    g.sort();
    assert_eq!(
        g,
        vec![
            (OPEN.to_owned(), "files:read".to_owned()),
            (TEAM.to_owned(), "files:read".to_owned()),
        ]
    );
    assert_eq!(
        grants(&s, &keeper.client_id),
        vec![(TEAM.to_owned(), "files:read".to_owned())]
    );
    assert_eq!(a.introspect(&s, &token)["active"], false);
    s.wait_for_audit(|e| {
        e.event == "grant.revoke"
            && e.reason.as_deref() == Some("policy_narrowed")
            && e.client_id.as_deref() == Some(a.client_id.as_str())
    });
    s.wait_for_audit(|e| e.event == "skill.policy" && e.outcome == "success");

    // Admitting nobody but the operator removes the grant altogether.
    s.admin_ok(
        "POST",
        "/admin/skills/policy",
        Some(json!({"audience": TEAM, "grantable_by": ["operator"]})),
    );
    assert_eq!(
        grants(&s, &a.client_id),
        vec![(OPEN.to_owned(), "files:read".to_owned())]
    );
    assert!(grants(&s, &keeper.client_id).is_empty());
    // A malformed policy changes nothing.
    let r = s.admin(
        "POST",
        "/admin/skills/policy",
        Some(json!({"audience": OPEN, "grantable_by": ["everyone"]})),
    );
    assert_oauth_error(r, 400, "invalid_request");
    s.expect_refusal_audited("skill.policy", "policy_invalid");
    assert_eq!(
        grants(&s, &a.client_id),
        vec![(OPEN.to_owned(), "files:read".to_owned())]
    );
}

#[test]
fn a_skills_operator_sees_who_holds_grants_and_revokes_them_and_nobody_else_can() {
    let s = console_builder().start();
    let alice = Browser::dev_login(&s, "alice");
    let bob = Browser::dev_login(&s, "bob");
    // Alice adds a skill anyone may be granted.
    alice
        .submit_from(
            "/console",
            "/console/skills",
            &[
                ("audience", TEAM),
                ("name", "Alice's files"),
                ("scopes", "files:read"),
                ("ttl_secs", "300"),
                ("policy", "any"),
            ],
        )
        .expect_see_other("/console");
    let (agent, code) = pending(&s);
    bob.approve(&code, &[(TEAM, "files:read")])
        .expect_see_other(&format!("/console/agents/{}", agent.client_id));

    let page_path = format!(
        "/console/skill?audience={}",
        url::form_urlencoded::byte_serialize(TEAM.as_bytes()).collect::<String>()
    );
    let page = alice.get(&page_path).expect(200);
    assert!(page.contains(&agent.client_id), "{}", page.body);
    assert!(page.contains("dev:bob"), "{}", page.body);
    // Bob does not operate it: it does not exist for him, nor can he revoke.
    bob.get(&page_path).expect(404);
    bob.submit_from(
        "/console",
        "/console/skill/revoke",
        &[("audience", TEAM), ("client_id", &agent.client_id)],
    )
    .expect(404);
    assert_eq!(grants(&s, &agent.client_id).len(), 1);

    let t = agent.skill_token(&s, TEAM);
    alice
        .submit_from(
            &page_path,
            "/console/skill/revoke",
            &[("audience", TEAM), ("client_id", &agent.client_id)],
        )
        .expect_see_other(&page_path);
    assert!(grants(&s, &agent.client_id).is_empty());
    assert_eq!(agent.introspect(&s, &t)["active"], false);
    s.wait_for_audit(|e| {
        e.event == "grant.revoke"
            && e.outcome == "success"
            && e.owner_id.as_deref() == Some("dev:alice")
    });
    // A skill the console creates without a choice admits its operator only.
    alice
        .submit_from(
            "/console",
            "/console/skills",
            &[
                ("audience", OPEN),
                ("name", "Private"),
                ("scopes", "files:read"),
                ("ttl_secs", "300"),
            ],
        )
        .expect_see_other("/console");
    let listed = bob.get("/console").expect(200);
    assert!(!listed.contains(OPEN), "{}", listed.body);
    assert!(alice.get("/console").expect(200).contains(OPEN));
}

#[test]
fn skills_from_before_policies_admit_anyone_and_are_flagged_until_one_is_chosen() {
    let s = console_builder().start();
    // A row as the previous schema wrote it: the migration's defaults apply.
    sql_query(format!(
        "INSERT INTO skills (audience, name, scopes, ttl_secs, require_dpop, created_at, updated_at) \
         VALUES ('{TEAM}', 'Old', 'files:read', 300, FALSE, 1, 1)"
    ))
    .execute(&mut s.db.connect())
    .expect("insert an old-style skill");
    let listed = s.admin_ok("GET", "/admin/skills", None);
    let old = listed["skills"]
        .as_array()
        .and_then(|l| l.iter().find(|k| k["audience"] == TEAM))
        .cloned()
        .expect("the skill is listed");
    assert_eq!(old["grantable_by"], json!(["any"]), "{old}");
    assert_eq!(old["policy_needs_review"], true, "{old}");
    // Its grants keep working for anyone, as before the upgrade.
    let a = Agent::register(&s);
    a.approve(&s, "github:5", json!({TEAM: "files:read"}));
    a.skill_token(&s, TEAM);
    // Choosing a policy clears the flag.
    s.admin_ok(
        "POST",
        "/admin/skills/policy",
        Some(json!({"audience": TEAM, "grantable_by": ["any"]})),
    );
    let listed = s.admin_ok("GET", "/admin/skills", None);
    assert_eq!(
        listed["skills"][0]["policy_needs_review"], false,
        "{listed}"
    );
}
