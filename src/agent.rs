//! The reference agent: what `patron agent …` does. It keeps a P-256 key for client
//! authentication (`private_key_jwt`, RFC 7523) and another for DPoP (RFC 9449) in a
//! mode-0600 file, registers itself, and asks for tokens with a fresh assertion and proof
//! each time. It doubles as a test driver and as the fixture generator of the benchmarks.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
use josekit::jwk::{Jwk, KeyPair as _};
use josekit::jws::JwsSigner as _;
use serde_json::{Map, Value, json};

use crate::clock::UnixTime;
use crate::crypto;

/// Kid of the client-authentication key in the registered `jwks`.
pub const AUTH_KID: &str = "agent-auth-1";

/// What the agent remembers between commands.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AgentFile {
    /// Patron's base URL (the issuer).
    pub server: String,
    /// Our `client_id`.
    pub client_id: String,
    /// RFC 7592 management token.
    pub registration_access_token: String,
    /// RFC 7592 management URL.
    pub registration_client_uri: String,
    /// Private JWK for client assertions.
    pub auth_key: Value,
    /// Private JWK for DPoP proofs.
    pub dpop_key: Value,
}

/// A P-256 key pair, with its signer built once.
pub struct Key(EcKeyPair, josekit::jws::alg::ecdsa::EcdsaJwsSigner);

impl Key {
    /// Generates a fresh key.
    pub fn generate() -> anyhow::Result<Self> {
        Self::from_pair(EcKeyPair::generate(EcCurve::P256)?)
    }

    /// Loads a key from its private JWK.
    pub fn from_private_jwk(jwk: &Value) -> anyhow::Result<Self> {
        let map: Map<String, Value> = jwk
            .as_object()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("stored key is not a JWK object"))?;
        Self::from_pair(EcKeyPair::from_jwk(&Jwk::from_map(map)?)?)
    }

    fn from_pair(pair: EcKeyPair) -> anyhow::Result<Self> {
        let signer = josekit::jws::ES256.signer_from_der(pair.to_der_private_key())?;
        Ok(Self(pair, signer))
    }

    /// The private JWK (for the agent file only).
    pub fn private_jwk(&self) -> Value {
        Value::Object(self.0.to_jwk_private_key().as_ref().clone())
    }

    /// The public JWK, with `kid` when given.
    pub fn public_jwk(&self, kid: Option<&str>) -> Value {
        let mut m = self.0.to_jwk_public_key().as_ref().clone();
        if let Some(k) = kid {
            m.insert("kid".into(), json!(k));
        }
        Value::Object(m)
    }

    /// RFC 7638 thumbprint of the public key.
    pub fn thumbprint(&self) -> String {
        let jwk = self.public_jwk(None);
        jwk.as_object()
            .and_then(|m| crate::jose::jwks::thumbprint(m).ok())
            .unwrap_or_default()
    }

    fn sign(&self, header: &Value, claims: &Value) -> anyhow::Result<String> {
        let mut out = String::with_capacity(512);
        URL_SAFE_NO_PAD.encode_string(header.to_string(), &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.to_string(), &mut out);
        let sig = self.1.sign(out.as_bytes())?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(sig, &mut out);
        Ok(out)
    }

    /// A client assertion (RFC 7523 §3) for `client_id`, audience `aud`, valid 60 s.
    pub fn client_assertion(
        &self,
        client_id: &str,
        aud: &str,
        now: UnixTime,
    ) -> anyhow::Result<String> {
        self.sign(
            &json!({"alg": "ES256", "kid": AUTH_KID, "typ": "JWT"}),
            &json!({
                "iss": client_id, "sub": client_id, "aud": aud,
                "iat": now, "exp": now + 60, "jti": crypto::random_id(""),
            }),
        )
    }

    /// A DPoP proof (RFC 9449 §4.2) for `htm` `htu`, with the server's nonce when given.
    pub fn dpop_proof(
        &self,
        htm: &str,
        htu: &str,
        now: UnixTime,
        nonce: Option<&str>,
    ) -> anyhow::Result<String> {
        let mut claims = json!({"htm": htm, "htu": htu, "iat": now, "jti": crypto::random_id("")});
        if let (Some(n), Some(obj)) = (nonce, claims.as_object_mut()) {
            obj.insert("nonce".into(), json!(n));
        }
        self.sign(
            &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.public_jwk(None)}),
            &claims,
        )
    }
}

/// Registration metadata of a reference agent.
pub fn registration_metadata(name: &str, auth: &Key) -> Value {
    json!({
        "client_name": name,
        "software_id": "patron-agent-cli",
        "software_version": env!("CARGO_PKG_VERSION"),
        "grant_types": ["client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"],
        "response_types": [],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [auth.public_jwk(Some(AUTH_KID))]},
        "dpop_bound_access_tokens": true,
    })
}

/// Writes the agent file with mode 0600 (it holds private keys).
pub fn save(path: &Path, file: &AgentFile) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(serde_json::to_string_pretty(file)?.as_bytes())?;
    Ok(())
}

/// Reads the agent file.
pub fn load(path: &Path) -> anyhow::Result<AgentFile> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read {}: {e} (run `patron agent register` first)",
            path.display()
        )
    })?;
    Ok(serde_json::from_str(&text)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::dpop::{NonceCheck, ProofRequirements, verify_proof};

    #[test]
    fn proofs_made_by_the_agent_pass_the_servers_check() {
        let k = Key::generate().unwrap();
        let proof = k
            .dpop_proof("POST", "https://as.example/token", 1000, None)
            .unwrap();
        let v = verify_proof(
            &proof,
            &ProofRequirements {
                htm: "POST",
                htu: "https://as.example/token",
                now: 1000,
                max_age_secs: 60,
                skew_secs: 5,
                nonce: NonceCheck::NotRequired,
                access_token: None,
            },
        )
        .unwrap();
        assert_eq!(v.jkt, k.thumbprint());
    }

    #[test]
    fn keys_survive_the_agent_file() {
        let k = Key::generate().unwrap();
        let again = Key::from_private_jwk(&k.private_jwk()).unwrap();
        assert_eq!(k.thumbprint(), again.thumbprint());
    }
}
