//! Third-party clients register unchanged.

use openidconnect::core::CoreClientRegistrationRequest;
use openidconnect::registration::EmptyAdditionalClientMetadata;
use openidconnect::{ClientName, RedirectUrl, RegistrationUrl};

use crate::helpers::TestServer;

#[test]
fn the_openidconnect_crate_registers_a_client_and_reads_the_response() {
    let s = TestServer::spawn();
    let http = openidconnect::reqwest::blocking::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = CoreClientRegistrationRequest::new(
        vec![RedirectUrl::new("https://agent.example/callback".into()).unwrap()],
        EmptyAdditionalClientMetadata {},
    )
    .set_client_name(Some(
        vec![(None, ClientName::new("openidconnect agent".into()))]
            .into_iter()
            .collect(),
    ))
    .register(&RegistrationUrl::new(s.url("/register")).unwrap(), &http)
    .expect("registration through the openidconnect crate");

    assert!(response.client_id().as_str().starts_with("agt_"));
    assert!(response.client_secret().is_some());
    assert!(response.registration_access_token().is_some());
    let uri = response
        .registration_client_uri()
        .expect("registration_client_uri")
        .url()
        .to_string();
    assert_eq!(
        uri,
        s.url(&format!("/register/{}", response.client_id().as_str()))
    );
    assert_eq!(s.count_clients(), 1);
}
