//! The `patron` command line: parse arguments, load configuration, call the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use patron::config::Config;
use patron::jose::keys::roles;
use patron::service::{enrollment, keys as key_service};
use patron::startup::{Application, load_kek};
use patron::store::{ConnectionManager, run_migrations};
use patron::{cli, clock, endpoints};

// mimalloc: request handling allocates many small, short-lived buffers; glibc malloc spent
// about 15% of a token request's CPU on them (see BENCHMARKS.md). Built with `no_thp`
// (Cargo.toml) so that idle memory stays small.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Patron: an OAuth 2.0 authorization server for AI agents.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// TOML configuration file (settings also come from PATRON_* environment variables).
    #[arg(long, short, global = true, env = "PATRON_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (migrates the database and creates the first signing key if needed).
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080 (overrides `listen`).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage enrollment tokens (RFC 7591 initial access tokens minted for an owner).
    #[command(subcommand)]
    Enrollment(EnrollmentCommand),
    /// Administer a running server through its admin API (needs PATRON_ADMIN_TOKEN), or hash
    /// an admin token for the configuration.
    Admin(AdminArgs),
    /// The reference agent: register, get tokens, exchange them.
    Agent(AgentArgs),
}

#[derive(Args)]
struct AdminArgs {
    /// Base URL of the server.
    #[arg(
        long,
        env = "PATRON_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    server: String,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Skills (resource servers).
    #[command(subcommand)]
    Skill(SkillCommand),
    /// Agents.
    #[command(subcommand)]
    Agent(AdminAgentCommand),
    /// Owners.
    #[command(subcommand)]
    Owner(OwnerCommand),
    /// Print the argon2id hash of an admin token for `admin.token_hash`
    /// (PATRON_ADMIN_TOKEN_HASH): reads the token from standard input, or prompts for it.
    HashToken,
    /// Tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Revoke a token by its jti (as an audit line shows it), and the tokens exchanged
    /// from it, on every replica; an unknown jti is recorded anyway.
    Revoke {
        /// The token's jti.
        jti: String,
    },
}

#[derive(Subcommand)]
enum SkillCommand {
    /// Register or replace a skill.
    Add {
        /// Audience URI (the `aud` of its tokens; what agents pass as `resource`).
        #[arg(long)]
        audience: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Space-separated scopes it understands.
        #[arg(long)]
        scopes: String,
        /// Token lifetime in seconds (default tokens.default_skill_ttl_secs).
        #[arg(long)]
        ttl: Option<i64>,
        /// Only DPoP-bound tokens for this skill.
        #[arg(long)]
        require_dpop: bool,
        /// The registered client that is this skill (lets it exchange tokens as a delegate).
        #[arg(long)]
        client_id: Option<String>,
        /// Who may be granted it: operator (only the skill's operator), any,
        /// owner:<owner id> or domain:<domain>, each optionally =scope1,scope2 (repeatable;
        /// required: the choice is explicit).
        #[arg(long = "grantable-by", required = true)]
        grantable_by: Vec<String>,
        /// An audience the skill's client may exchange tokens toward (repeatable; none by
        /// default).
        #[arg(long = "delegate-to", value_name = "AUDIENCE")]
        delegate_to: Vec<String>,
    },
    /// List skills.
    List,
    /// Change who may be granted a skill; grants the new policy no longer admits are
    /// revoked, with the tokens issued under them.
    Policy {
        /// The skill's audience URI.
        audience: String,
        /// Policy entries, as for `skill add` (repeatable, at least one).
        #[arg(long = "grantable-by", required = true)]
        grantable_by: Vec<String>,
    },
    /// Check again that an owner's skill proves its audience (fetches its RFC 9728
    /// protected resource metadata); exits non-zero with the reason when it does not.
    Check {
        /// The skill's audience.
        audience: String,
    },
}

#[derive(Subcommand)]
enum AdminAgentCommand {
    /// Link an agent to its owner and grant it skills; it becomes active.
    Approve {
        /// The agent's client_id.
        client_id: String,
        /// Owner id, e.g. github:12345 (created if new).
        #[arg(long)]
        owner: String,
        /// AUDIENCE=scope1,scope2 (repeatable).
        #[arg(long = "grant")]
        grants: Vec<String>,
    },
    /// Suspend an agent: every token issued to it so far stops working.
    Suspend {
        /// The agent's client_id.
        client_id: String,
    },
    /// Resume a suspended agent.
    Resume {
        /// The agent's client_id.
        client_id: String,
    },
}

#[derive(Subcommand)]
enum OwnerCommand {
    /// Kill switch: invalidate every token of every agent of this owner.
    RevokeAll {
        /// Owner id.
        owner_id: String,
    },
}

#[derive(Args)]
struct AgentArgs {
    /// The agent's key and registration file (mode 0600).
    #[arg(long, default_value = "patron-agent.json", global = true)]
    file: PathBuf,
    #[command(subcommand)]
    command: AgentCommand,
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Generate keys, register with private_key_jwt and DPoP, and print the user code.
    Register {
        /// Base URL of the server.
        #[arg(long, env = "PATRON_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        /// Name shown to the owner.
        #[arg(long, default_value = "patron reference agent")]
        name: String,
        /// Enrollment token from the owner (the agent is active at once).
        #[arg(long)]
        enrollment_token: Option<String>,
    },
    /// Get a token: an agent token, or with --resource a token for that skill.
    Token {
        /// Skill audience (RFC 8707 resource).
        #[arg(long)]
        resource: Option<String>,
        /// Requested scopes (space-separated).
        #[arg(long)]
        scope: Option<String>,
    },
    /// Exchange a token (default: a fresh agent token) for a token to one skill.
    Exchange {
        /// Skill audience.
        #[arg(long)]
        audience: String,
        /// Requested scopes (space-separated).
        #[arg(long)]
        scope: Option<String>,
        /// The token to exchange.
        #[arg(long)]
        subject_token: Option<String>,
    },
    /// Write single-use assertion/proof pairs for load tests.
    #[command(hide = true)]
    BenchFixtures {
        /// How many pairs.
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List signing keys and their roles (next, current, retiring).
    List,
    /// Pre-publish a new signing key; it starts signing after the promotion delay.
    Rotate {
        /// Seconds until the new key signs (default: keys.promote_delay_secs).
        #[arg(long)]
        delay: Option<u64>,
    },
}

#[derive(Subcommand)]
enum EnrollmentCommand {
    /// Mint an enrollment token; agents that register with it are linked to the owner at once.
    Create(EnrollmentArgs),
}

#[derive(Args)]
struct EnrollmentArgs {
    /// Owner id, e.g. github:12345 (the owner record is created if new).
    #[arg(long)]
    owner: String,
    /// Preset grant AUDIENCE=scope1,scope2 (repeatable).
    #[arg(long = "grant")]
    grants: Vec<String>,
    /// How many registrations the token allows.
    #[arg(long, default_value_t = 1)]
    uses: u16,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 86_400)]
    ttl: u32,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    patron::telemetry::init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("patron: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // Client-side commands need no server configuration.
    match cli.command {
        Command::Admin(args) => return block_on(admin(args)),
        Command::Agent(args) => return agent(args),
        _ => {}
    }
    let listen = match &cli.command {
        Command::Serve { listen } => listen.as_deref(),
        _ => None,
    };
    let config = Config::load_with_listen(cli.config.as_deref(), listen)?;
    match cli.command {
        Command::Serve { .. } => serve(config),
        Command::Migrate => {
            let mut conn = ConnectionManager::new(config.database_url.clone()).establish()?;
            let n = run_migrations(&mut conn)?;
            println!("applied {n} migration(s); the database is up to date");
            Ok(())
        }
        Command::Keys(KeysCommand::List) => keys_list(&config),
        Command::Keys(KeysCommand::Rotate { delay }) => keys_rotate(&config, delay),
        Command::Enrollment(EnrollmentCommand::Create(args)) => enrollment_create(&config, args),
        Command::Admin(_) | Command::Agent(_) => Ok(()),
    }
}

fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

fn print_json(v: &serde_json::Value) {
    use std::io::Write as _;
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = writeln!(
        std::io::stdout(),
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

async fn admin(args: AdminArgs) -> anyhow::Result<()> {
    let token = || {
        std::env::var("PATRON_ADMIN_TOKEN")
            .context("set PATRON_ADMIN_TOKEN to the server's admin token")
    };
    let client = cli::Client::new(&args.server)?;
    let out = match args.command {
        AdminCommand::HashToken => {
            println!("{}", cli::hash_admin_token()?);
            return Ok(());
        }
        AdminCommand::Skill(SkillCommand::Add {
            audience,
            name,
            scopes,
            ttl,
            require_dpop,
            client_id,
            grantable_by,
            delegate_to,
        }) => {
            let body = serde_json::json!({
                "audience": audience, "name": name, "scopes": scopes, "ttl_secs": ttl,
                "require_dpop": require_dpop, "client_id": client_id,
                "grantable_by": grantable_by,
                "delegate_audiences": delegate_to,
            });
            client
                .admin(&token()?, "POST", "/skills", Some(body))
                .await?
        }
        AdminCommand::Skill(SkillCommand::Policy {
            audience,
            grantable_by,
        }) => {
            let body = serde_json::json!({"audience": audience, "grantable_by": grantable_by});
            client
                .admin(&token()?, "POST", "/skills/policy", Some(body))
                .await?
        }
        AdminCommand::Skill(SkillCommand::List) => {
            client.admin(&token()?, "GET", "/skills", None).await?
        }
        AdminCommand::Skill(SkillCommand::Check { audience }) => {
            client
                .admin(
                    &token()?,
                    "POST",
                    endpoints::admin::SKILLS_CHECK,
                    Some(serde_json::json!({ "audience": audience })),
                )
                .await?
        }
        AdminCommand::Agent(AdminAgentCommand::Approve {
            client_id,
            owner,
            grants,
        }) => {
            let body = serde_json::json!({"owner": owner, "grants": cli::parse_grants(&grants)?});
            client
                .admin(
                    &token()?,
                    "POST",
                    &format!("/agents/{client_id}/approve"),
                    Some(body),
                )
                .await?
        }
        AdminCommand::Agent(AdminAgentCommand::Suspend { client_id }) => {
            client
                .admin(
                    &token()?,
                    "POST",
                    &format!("/agents/{client_id}/suspend"),
                    None,
                )
                .await?
        }
        AdminCommand::Agent(AdminAgentCommand::Resume { client_id }) => {
            client
                .admin(
                    &token()?,
                    "POST",
                    &format!("/agents/{client_id}/resume"),
                    None,
                )
                .await?
        }
        AdminCommand::Owner(OwnerCommand::RevokeAll { owner_id }) => {
            client
                .admin(
                    &token()?,
                    "POST",
                    &format!("/owners/{owner_id}/revoke-all"),
                    None,
                )
                .await?
        }
        AdminCommand::Token(TokenCommand::Revoke { jti }) => {
            client
                .admin(
                    &token()?,
                    "POST",
                    patron::endpoints::admin::REVOKE_TOKEN,
                    Some(serde_json::json!({ "jti": jti })),
                )
                .await?
        }
    };
    print_json(&out);
    Ok(())
}

fn agent(args: AgentArgs) -> anyhow::Result<()> {
    let file = args.file;
    match args.command {
        AgentCommand::Register {
            server,
            name,
            enrollment_token,
        } => block_on(async move {
            let client = cli::Client::new(&server)?;
            let r = client
                .register_agent(&name, enrollment_token.as_deref(), &file)
                .await?;
            let get = |k: &str| {
                r.get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            println!(
                "registered {} (saved to {}, mode 0600)",
                get("client_id"),
                file.display()
            );
            if get("owner_status") == "pending" {
                println!(
                    "Ask your owner to approve this agent: code {}",
                    get("user_code")
                );
                println!("  {}", get("verification_uri_complete"));
            } else {
                println!("Active for its owner; get a token with `patron agent token`.");
            }
            Ok(())
        }),
        AgentCommand::Token { resource, scope } => block_on(async move {
            let mut form = vec![("grant_type".to_owned(), "client_credentials".to_owned())];
            if let Some(r) = resource {
                form.push(("resource".into(), r));
            }
            if let Some(s) = scope {
                form.push(("scope".into(), s));
            }
            print_json(&cli::agent_token(&file, form).await?);
            Ok(())
        }),
        AgentCommand::Exchange {
            audience,
            scope,
            subject_token,
        } => block_on(async move {
            print_json(
                &cli::agent_exchange(&file, &audience, scope.as_deref(), subject_token).await?,
            );
            Ok(())
        }),
        AgentCommand::BenchFixtures { count, out } => cli::bench_fixtures(&file, count, &out),
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(config).await?;
        match app.admin_addr() {
            Some(admin) => println!(
                "patron listening on http://{} (issuer {}; admin API on http://{admin})",
                app.local_addr(),
                app.issuer()
            ),
            None => println!(
                "patron listening on http://{} (issuer {})",
                app.local_addr(),
                app.issuer()
            ),
        }
        tracing::info!(addr = %app.local_addr(), issuer = %app.issuer(), "patron started");
        app.run().await
    })
}

fn open_db(config: &Config) -> anyhow::Result<patron::store::DbConnection> {
    let mut conn = ConnectionManager::new(config.database_url.clone())
        .establish()
        .context("cannot open the database (database.url)")?;
    run_migrations(&mut conn)?;
    Ok(conn)
}

fn keys_list(config: &Config) -> anyhow::Result<()> {
    let mut conn = open_db(config)?;
    let keys = key_service::load(&mut conn)?;
    let overlap = config.keys.max_token_lifetime_secs + config.validation.clock_skew_secs;
    let now = clock::now();
    if keys.is_empty() {
        println!("no signing keys yet; `patron serve` creates the first one");
        return Ok(());
    }
    println!(
        "{:<45} {:<6} {:>4} {:<9} {:>12}",
        "KID", "ALG", "GEN", "ROLE", "ACTIVATES"
    );
    for (k, role) in roles(&keys, now, overlap) {
        let when = k.activate_at - now;
        let activates = if when > 0 {
            format!("in {when}s")
        } else {
            format!("{}s ago", -when)
        };
        println!(
            "{:<45} {:<6} {:>4} {:<9} {:>12}",
            k.kid,
            k.alg,
            k.generation,
            role.name(),
            activates
        );
    }
    Ok(())
}

fn keys_rotate(config: &Config, delay: Option<u64>) -> anyhow::Result<()> {
    let mut conn = open_db(config)?;
    let kek = load_kek(config)?;
    let now = clock::now();
    let delay = match delay {
        Some(d) => i64::try_from(d).context("--delay is too large")?,
        None => config.keys.promote_delay_secs,
    };
    let key = key_service::add_key(&mut conn, &config.keys, &kek, now, now + delay)?;
    println!(
        "pre-published signing key {} ({}); it signs from {} (in {delay}s). \
         Running servers publish it within keys.refresh_interval_secs; the previous key stays published for {}s after that.",
        key.kid,
        key.alg,
        key.activate_at,
        config.keys.max_token_lifetime_secs + config.validation.clock_skew_secs
    );
    Ok(())
}

fn enrollment_create(config: &Config, args: EnrollmentArgs) -> anyhow::Result<()> {
    let mut grants = Vec::new();
    for g in &args.grants {
        let (aud, scopes) = g
            .split_once('=')
            .with_context(|| format!("--grant {g}: expected AUDIENCE=scope1,scope2"))?;
        let aud = patron::oauth::ids::Audience::parse(aud.trim())
            .map_err(|e| anyhow::anyhow!("--grant {g}: {e}"))?;
        let scopes = patron::oauth::scope::Scopes::parse(&scopes.replace(',', " "))
            .map_err(|e| anyhow::anyhow!("--grant {g}: {e}"))?;
        if scopes.is_empty() {
            anyhow::bail!("--grant {g}: name at least one scope");
        }
        grants.push((aud.into(), scopes.into()));
    }
    let owner = patron::oauth::ids::OwnerId::parse(args.owner.trim())
        .map_err(|e| anyhow::anyhow!("--owner: {e}"))?;
    let mut conn = open_db(config)?;
    let (token, id) = enrollment::insert_token(
        &mut conn,
        &owner,
        &grants,
        i32::from(args.uses),
        i64::from(args.ttl),
        clock::now(),
    )?;
    println!(
        "enrollment token {id} for {} ({} use(s), expires in {}s):",
        args.owner, args.uses, args.ttl
    );
    println!("{token}");
    println!(
        "It is shown once. Agents send it as `Authorization: Bearer <token>` to POST /register."
    );
    Ok(())
}
