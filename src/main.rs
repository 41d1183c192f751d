//! The `patron` command line: parse arguments, load configuration, call the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use patron::clock;
use patron::config::Config;
use patron::jose::keys::roles;
use patron::service::{keys as key_service, registration};
use patron::startup::{Application, load_kek};
use patron::store::{ConnectionManager, run_migrations};

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
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(config)?;
        println!(
            "patron listening on http://{} (issuer {})",
            app.local_addr(),
            app.issuer()
        );
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
        grants.push((
            aud.trim().to_owned(),
            scopes.replace(',', " ").trim().to_owned(),
        ));
    }
    if args.owner.trim().is_empty() || !args.owner.contains(':') {
        anyhow::bail!("--owner must look like github:12345, google:<sub> or oidc:<issuer>#<sub>");
    }
    let mut conn = open_db(config)?;
    let (token, id) = registration::mint_enrollment_token(
        &mut conn,
        &args.owner,
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
