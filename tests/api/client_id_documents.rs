//! Clients identified by a Client ID Metadata Document: the document is fetched under the
//! SSRF guard, must name itself, is bounded in size, and the operator's host lists apply.
//! Such a client is shared: each person consents on their own and nobody owns it.

use diesel::prelude::*;
use serde_json::{Value, json};

use crate::helpers::code_flow::{CodeClient, Pkce, REDIRECT};
use crate::helpers::console::{Browser, console_builder};
use crate::helpers::https::{HttpsFiles, https_files};
use crate::helpers::{SKILL, Spawn, TestServer, claims_of};

fn document(client_id: &str) -> Value {
    json!({
        "client_id": client_id,
        "client_name": "Shared MCP app",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
}

fn published(files: &HttpsFiles, doc: &Value) -> String {
    let id = format!("{}/oauth/client.json", files.base());
    let mut doc = doc.clone();
    if doc["client_id"] == "SELF" {
        doc["client_id"] = json!(id);
    }
    files.publish("oauth/client.json", &doc.to_string());
    id
}

fn start(builder: Spawn) -> TestServer {
    let s = builder.start();
    s.add_skill(SKILL, "files:read files:write", 120, false, None);
    s
}

fn client(id: &str) -> CodeClient {
    CodeClient {
        client_id: id.to_owned(),
        secret: None,
    }
}

/// The error page an authorization request for document client `id` gets, and its audit.
fn refused(s: &TestServer, id: &str, reason: &str) {
    let alice = Browser::dev_login(s, "alice");
    let page = alice.get(&client(id).authorize_path(&[SKILL], &Pkce::new(), &[]));
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.location.is_none(), "never redirected to");
    s.expect_refusal_audited("authorize", reason);
    s.expect_refusal_audited("client_document.fetch", reason);
}

#[test]
fn a_document_client_is_shared_each_person_consenting_on_their_own() {
    let files = https_files();
    let s = start(files.trusted_by(console_builder()));
    let id = published(&files, &document("SELF"));
    let app = client(&id);

    let meta: Value = s.metadata();
    assert_eq!(meta["client_id_metadata_document_supported"], true);

    for person in ["alice", "bob"] {
        let b = Browser::dev_login(&s, person);
        let pkce = Pkce::new();
        let path = app.authorize_path(&[SKILL], &pkce, &[]);
        let consent = b.get(&path).expect(200);
        assert!(consent.contains("Shared MCP app"), "{}", consent.body);
        assert!(
            consent.contains("vouched-by") && consent.contains("localhost"),
            "the vouching host is shown: {}",
            consent.body
        );
        assert!(
            !consent.contains("claims-agent"),
            "nobody becomes the owner of a shared client"
        );
        let code = b.authorize_code(&path, &[SKILL]);
        let tokens = app.exchange_ok(&s, &code, &pkce.verifier, &[]);
        let claims = claims_of(tokens["access_token"].as_str().unwrap());
        assert_eq!(claims["sub"], format!("dev:{person}"));
        assert_eq!(claims["client_id"], id.as_str());
        assert_eq!(claims["aud"], SKILL);
        let refreshed = app.refresh_ok(&s, tokens["refresh_token"].as_str().unwrap(), None);
        assert_eq!(
            claims_of(refreshed["access_token"].as_str().unwrap())["sub"],
            format!("dev:{person}")
        );
    }

    assert_eq!(s.owner_of(&id), None, "a document client has no owner");
    use patron::store::schema::consents;
    let mut c = s.db.connect();
    let people: i64 = consents::table
        .filter(consents::client_id.eq(&id))
        .count()
        .get_result(&mut c)
        .unwrap();
    assert_eq!(people, 2, "one consent per person");
    s.wait_for_audit(|e| e.event == "client_document.fetch" && e.outcome == "success");
    use patron::store::schema::audit_events;
    let fetches: i64 = audit_events::table
        .filter(audit_events::event.eq("client_document.fetch"))
        .count()
        .get_result(&mut c)
        .unwrap();
    assert_eq!(
        fetches, 1,
        "within its cache lifetime the document is fetched once for everybody"
    );
}

#[test]
fn a_document_that_names_another_client_id_is_refused() {
    let files = https_files();
    let s = start(files.trusted_by(console_builder()));
    let id = published(
        &files,
        &document("https://elsewhere.example/oauth/client.json"),
    );
    refused(&s, &id, "cimd_client_id_mismatch");
}

#[test]
fn a_document_too_large_is_refused() {
    let files = https_files();
    let s = start(
        files
            .trusted_by(console_builder())
            .env("PATRON_CLIENT_ID_DOCUMENTS__MAX_BYTES", "1024"),
    );
    let mut doc = document("SELF");
    doc["client_name"] = json!("x".repeat(2000));
    let id = published(&files, &doc);
    refused(&s, &id, "cimd_too_large");
}

#[test]
fn a_document_on_a_private_address_is_never_fetched() {
    let files = https_files();
    // The server is not told to allow localhost: 127.0.0.1 is a private address.
    let s = start(console_builder());
    let id = published(&files, &document("SELF"));
    refused(&s, &id, "cimd_private_address");
}

#[test]
fn the_operators_host_lists_apply() {
    let files = https_files();
    let s = start(
        files
            .trusted_by(console_builder())
            .env("PATRON_CLIENT_ID_DOCUMENTS__DENY_HOSTS", "[\"localhost\"]"),
    );
    let id = published(&files, &document("SELF"));
    refused(&s, &id, "cimd_host_refused");

    let s = start(files.trusted_by(console_builder()).env(
        "PATRON_CLIENT_ID_DOCUMENTS__ALLOW_HOSTS",
        "[\"*.example.com\"]",
    ));
    refused(&s, &id, "cimd_host_refused");

    let s = start(
        files
            .trusted_by(console_builder())
            .env("PATRON_CLIENT_ID_DOCUMENTS__ENABLED", "false"),
    );
    refused(&s, &id, "cimd_disabled");
    let meta: Value = s.metadata();
    assert_eq!(meta["client_id_metadata_document_supported"], false);
}

#[test]
fn a_document_with_a_secret_or_a_secret_based_method_is_refused() {
    let files = https_files();
    let s = start(files.trusted_by(console_builder()));
    let mut doc = document("SELF");
    doc["token_endpoint_auth_method"] = json!("client_secret_basic");
    let id = published(&files, &doc);
    refused(&s, &id, "cimd_auth_method");
}
