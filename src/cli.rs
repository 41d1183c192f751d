//! The client side of the command line: `patron admin …` (calls the admin API of a running
//! server) and `patron agent …` (the reference agent). Each command prints the server's JSON
//! answer, or the error it gave.

use std::path::Path;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::agent::{self, AgentFile, Key};
use crate::config::ADMIN_TOKEN_MIN_LEN;
use crate::secret::Secret;
use crate::{clock, crypto, endpoints};

/// `patron admin hash-token`: reads an admin token (the first line of standard input, or
/// typed at a prompt without echo on a terminal) and returns its argon2id PHC string, for
/// `admin.token_hash`.
pub fn hash_admin_token() -> anyhow::Result<String> {
    let token = read_admin_token()?;
    if token.expose().len() < ADMIN_TOKEN_MIN_LEN {
        bail!("the admin token must be at least 32 characters (e.g. `openssl rand -base64 32`)");
    }
    crypto::hash_argon2id(token.expose())
}

fn read_admin_token() -> anyhow::Result<Secret> {
    use std::io::{BufRead as _, IsTerminal as _};
    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.is_terminal() {
        eprint!("Admin token (not echoed): ");
        let hidden = set_terminal_echo(false);
        let read = stdin.lock().read_line(&mut line);
        if hidden {
            set_terminal_echo(true);
            eprintln!();
        }
        read.context("cannot read the admin token")?;
    } else {
        stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read the admin token from standard input")?;
    }
    Ok(Secret::from(line.trim_end_matches(['\r', '\n'])))
}

/// Turns the terminal's echo on or off with `stty`; whether that worked.
fn set_terminal_echo(on: bool) -> bool {
    std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(std::process::Stdio::inherit())
        .status()
        .is_ok_and(|s| s.success())
}

/// A client for one Patron server.
pub struct Client {
    http: reqwest::Client,
    server: String,
}

impl Client {
    /// A client for `server` (a base URL such as `http://127.0.0.1:8080`).
    pub fn new(server: &str) -> anyhow::Result<Self> {
        let server = server.trim_end_matches('/').to_owned();
        url::Url::parse(&server).with_context(|| format!("--server {server} is not a URL"))?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(Self { http, server })
    }

    async fn answer(resp: reqwest::Response) -> anyhow::Result<(u16, Value, Option<String>)> {
        let status = resp.status().as_u16();
        let nonce = resp
            .headers()
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = resp.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, body, nonce))
    }

    /// Calls the admin API.
    pub async fn admin(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{}{path}", self.server, endpoints::admin::SCOPE);
        let req = match method {
            "GET" => self.http.get(&url),
            _ => self.http.post(&url),
        }
        .bearer_auth(token);
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        let (status, body, _) = Self::answer(
            req.send()
                .await
                .with_context(|| format!("cannot reach {url}"))?,
        )
        .await?;
        if status >= 400 {
            bail!("the server refused ({status}): {body}");
        }
        Ok(body)
    }

    /// Registers a new reference agent and writes its file.
    pub async fn register_agent(
        &self,
        name: &str,
        enrollment_token: Option<&str>,
        file: &Path,
    ) -> anyhow::Result<Value> {
        if file.exists() {
            bail!(
                "{} already exists; remove it or choose another --file",
                file.display()
            );
        }
        let auth = Key::generate()?;
        let dpop = Key::generate()?;
        let mut req = self
            .http
            .post(endpoints::url(&self.server, endpoints::REGISTRATION))
            .json(&agent::registration_metadata(name, &auth));
        if let Some(t) = enrollment_token {
            req = req.bearer_auth(t);
        }
        let (status, body, _) =
            Self::answer(req.send().await.context("cannot reach the server")?).await?;
        if status != 201 {
            bail!("registration refused ({status}): {body}");
        }
        let field = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        agent::save(
            file,
            &AgentFile {
                server: self.server.clone(),
                client_id: field("client_id"),
                registration_access_token: field("registration_access_token"),
                registration_client_uri: field("registration_client_uri"),
                auth_key: auth.private_jwk(),
                dpop_key: dpop.private_jwk(),
            },
        )?;
        Ok(body)
    }
}

/// Asks for a token with a fresh assertion and DPoP proof, retrying once with the server's
/// nonce if it asks for one (RFC 9449 §8).
pub async fn agent_token(file: &Path, form: Vec<(String, String)>) -> anyhow::Result<Value> {
    let a = agent::load(file)?;
    let client = Client::new(&a.server)?;
    let auth = Key::from_private_jwk(&a.auth_key)?;
    let dpop = Key::from_private_jwk(&a.dpop_key)?;
    let token_url = endpoints::url(&client.server, endpoints::TOKEN);
    let mut nonce: Option<String> = None;
    for _ in 0..2 {
        let now = clock::now();
        let mut f = form.clone();
        f.push((
            "client_assertion_type".into(),
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
        ));
        f.push((
            "client_assertion".into(),
            auth.client_assertion(&a.client_id, &token_url, now)?,
        ));
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&f)
            .finish();
        let resp = client
            .http
            .post(&token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                "DPoP",
                dpop.dpop_proof("POST", &token_url, now, nonce.as_deref())?,
            )
            .body(body)
            .send()
            .await
            .context("cannot reach the server")?;
        let (status, body, new_nonce) = Client::answer(resp).await?;
        if status == 400
            && body.get("error").and_then(Value::as_str) == Some("use_dpop_nonce")
            && new_nonce.is_some()
        {
            nonce = new_nonce;
            continue;
        }
        if status != 200 {
            bail!("token request refused ({status}): {body}");
        }
        return Ok(body);
    }
    bail!("the server kept asking for a new DPoP nonce")
}

/// `patron agent exchange`: exchanges `subject_token` (or a fresh agent token) for a token
/// to `audience`.
pub async fn agent_exchange(
    file: &Path,
    audience: &str,
    scope: Option<&str>,
    subject_token: Option<String>,
) -> anyhow::Result<Value> {
    let subject = match subject_token {
        Some(t) => t,
        None => {
            let t = agent_token(
                file,
                vec![("grant_type".into(), "client_credentials".into())],
            )
            .await?;
            t.get("access_token")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .context("the agent token response has no access_token")?
        }
    };
    let mut form = vec![
        (
            "grant_type".to_owned(),
            "urn:ietf:params:oauth:grant-type:token-exchange".to_owned(),
        ),
        ("subject_token".to_owned(), subject),
        (
            "subject_token_type".to_owned(),
            "urn:ietf:params:oauth:token-type:access_token".to_owned(),
        ),
        ("resource".to_owned(), audience.to_owned()),
    ];
    if let Some(s) = scope {
        form.push(("scope".into(), s.into()));
    }
    agent_token(file, form).await
}

/// `patron agent bench-fixtures`: `count` lines of `assertion<TAB>proof` for load tests,
/// each single-use and valid for a minute from now.
pub fn bench_fixtures(file: &Path, count: usize, out: &Path) -> anyhow::Result<()> {
    use std::io::Write as _;
    let a = agent::load(file)?;
    let auth = Key::from_private_jwk(&a.auth_key)?;
    let dpop = Key::from_private_jwk(&a.dpop_key)?;
    let token_url = endpoints::url(a.server.trim_end_matches('/'), endpoints::TOKEN);
    let now = clock::now();
    let mut w = std::io::BufWriter::new(std::fs::File::create(out)?);
    for _ in 0..count {
        writeln!(
            w,
            "{}\t{}",
            auth.client_assertion(&a.client_id, &token_url, now)?,
            dpop.dpop_proof("POST", &token_url, now, None)?
        )?;
    }
    Ok(())
}

/// Parses `AUDIENCE=scope1,scope2` grant arguments.
pub fn parse_grants(args: &[String]) -> anyhow::Result<Value> {
    let mut grants = serde_json::Map::new();
    for g in args {
        let (aud, scopes) = g
            .split_once('=')
            .with_context(|| format!("--grant {g}: expected AUDIENCE=scope1,scope2"))?;
        grants.insert(
            aud.trim().to_owned(),
            json!(scopes.replace(',', " ").trim()),
        );
    }
    Ok(Value::Object(grants))
}
