//! The `boxoffice` command: `serve` (the default), `migrate`, `seed --demo`, `admin create`,
//! `events dead-letters`, `probe`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use boxoffice::settings::{Module, Settings};
use boxoffice::startup::Application;
use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's allocator: glibc keeps what its per-thread arenas freed (after a
/// flash sale of 10,000 users the single binary held 172 MB, 67 MB once `malloc_trim` ran), so
/// RSS only ever grew; mimalloc gives freed pages back (docs/performance.md, "Memory").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "boxoffice", version, about = "Movie-ticket booking: one binary or split services")]
struct Cli {
    /// A configuration file layered over the defaults and the profile.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default with no subcommand).
    Serve {
        /// Modules to serve, comma-separated (default: every compiled-in module).
        #[arg(long, value_delimiter = ',')]
        modules: Option<Vec<Module>>,
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, value_name = "HOST:PORT")]
        bind: Option<SocketAddr>,
    },
    /// Bring the schemas of the served modules up to date, then exit.
    Migrate,
    /// Fill an empty catalog.
    Seed {
        /// The demo catalog: movies, three theaters, showtimes over the next 7 days.
        #[arg(long, required = true)]
        demo: bool,
    },
    /// Administrative tasks.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The event backbone: dead letters.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Exit 0 if the server this configuration describes is ready (`GET /health/ready`
    /// answers 200), else 1: a container health check in an image without curl.
    Probe {
        /// Another address than `server.bind` (an unspecified address means loopback).
        #[arg(long, value_name = "HOST:PORT")]
        bind: Option<SocketAddr>,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Events that a queue's consumer gave up on (after `events.max_attempts`).
    DeadLetters {
        #[command(subcommand)]
        command: DeadLetterCommand,
    },
}

#[derive(Subcommand)]
enum DeadLetterCommand {
    /// One line per dead letter: queue, event id, routing key, attempts, when, last error.
    List,
    /// Send dead letters back to their queue's consumer (with the in-process bus, the running
    /// server delivers them within `events.relay_poll_ms`).
    Replay {
        /// The event to replay (from every queue where it is dead).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        event_id: Option<uuid::Uuid>,
        /// Replay every dead letter.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an account with the admin role.
    Create {
        #[arg(long)]
        email: String,
        /// The password (or set BOXOFFICE_ADMIN_PASSWORD, which stays out of `ps`).
        #[arg(long, env = "BOXOFFICE_ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
        /// Defaults to the email's local part.
        #[arg(long)]
        username: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve { modules: None, bind: None });
    let mut settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("boxoffice: {e}");
            return ExitCode::from(2);
        }
    };
    // `serve --modules/--bind` outrank every layer: the result is validated as a whole again.
    if let Command::Serve { modules, bind } = &command {
        if modules.is_some() {
            settings.modules.clone_from(modules);
        }
        if let Some(bind) = bind {
            settings.server.bind = *bind;
        }
        if let Err(e) = settings.validate() {
            eprintln!("boxoffice: {e}");
            return ExitCode::from(2);
        }
    }
    let exporter = match platform::telemetry::init(&settings.log, &settings.traces, &settings.service_name()) {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("boxoffice: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("boxoffice: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        match command {
            Command::Serve { .. } => {
                let app = Application::build(settings).await?;
                let handle = app.handle();
                tokio::spawn(async move {
                    termination_signal().await;
                    tracing::info!("stopping: finishing in-flight requests");
                    handle.stop(true).await;
                });
                app.run_until_stopped().await?;
                Ok(())
            }
            Command::Migrate => migrate(&settings).await,
            Command::Seed { demo: _ } => seed_demo(&settings).await,
            Command::Admin { command: AdminCommand::Create { email, password, username } } => {
                create_admin(&settings, &email, &password, username.as_deref()).await
            }
            Command::Events { command: EventsCommand::DeadLetters { command } } => {
                dead_letters(&settings, command).await
            }
            Command::Probe { bind } => probe(bind.unwrap_or(settings.server.bind)).await,
        }
    });
    // The exporter's last batch goes out on its own thread, blocking this one until sent.
    if let Some(exporter) = exporter {
        exporter.shutdown();
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "boxoffice stopped");
            eprintln!("boxoffice: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM (Kubernetes, systemd) or SIGINT (Ctrl-C).
async fn termination_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::warn!("cannot listen for termination signals; stop with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}

async fn probe(mut bind: SocketAddr) -> anyhow::Result<()> {
    if bind.ip().is_unspecified() {
        bind.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{bind}/health/ready");
    let answer = platform::rest::http_client()?.get(&url).timeout(std::time::Duration::from_secs(3)).send().await?;
    anyhow::ensure!(answer.status().is_success(), "{url} answered {}", answer.status());
    Ok(())
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    for module in settings.served() {
        boxoffice::modules::migrate(settings, module).await?;
        tracing::info!(module = module.name(), "schema up to date");
    }
    Ok(())
}

async fn dead_letters(settings: &Settings, command: DeadLetterCommand) -> anyhow::Result<()> {
    use platform::events::Replay;
    let bus = boxoffice::modules::event_bus(settings, &mut platform::health::Readiness::default()).await?;
    match command {
        DeadLetterCommand::List => {
            for letter in bus.dead_letters().await? {
                let dead_at = letter.dead_at.map(|t| t.to_rfc3339()).unwrap_or_default();
                let error = letter.error.unwrap_or_default();
                println!(
                    "{}\t{}\t{}\t{}\t{dead_at}\t{error}",
                    letter.queue, letter.event_id, letter.routing_key, letter.attempts
                );
            }
        }
        DeadLetterCommand::Replay { event_id, all: _ } => {
            let which = event_id.map_or(Replay::All, Replay::Event);
            let replayed = bus.replay(which).await?;
            println!("{replayed} dead letter(s) sent back to their queue");
        }
    }
    Ok(())
}

/// Starts the movie module alone (with the demo off, so that this reports what it did).
#[cfg(feature = "movie")]
async fn seed_demo(settings: &Settings) -> anyhow::Result<()> {
    if !settings.serves(Module::Movie) {
        anyhow::bail!("this configuration does not serve the movie module (modules)");
    }
    let mut settings = settings.clone();
    settings.modules = Some(vec![Module::Movie]);
    settings.demo.seed = false;
    let started = boxoffice::modules::start(&settings).await?;
    let movies = started.peers.get::<movie::service::MovieService>()?;
    if movies.seed_demo().await? {
        println!("demo catalog created");
    } else {
        println!("the catalog is not empty: nothing seeded");
    }
    Ok(())
}

/// Starts the auth module alone and creates the admin through it.
#[cfg(feature = "auth")]
async fn create_admin(settings: &Settings, email: &str, password: &str, username: Option<&str>) -> anyhow::Result<()> {
    if !settings.serves(Module::Auth) {
        anyhow::bail!("this configuration does not serve the auth module (modules)");
    }
    let mut settings = settings.clone();
    settings.modules = Some(vec![Module::Auth]);
    let started = boxoffice::modules::start(&settings).await?;
    let admin = started.peers.get::<auth::service::AuthService>()?.create_admin(email, password, username).await?;
    println!("created admin {} <{}> id {}", admin.username, admin.email, admin.id);
    Ok(())
}

#[cfg(not(feature = "movie"))]
async fn seed_demo(_: &Settings) -> anyhow::Result<()> {
    anyhow::bail!("this binary was built without the movie module")
}

#[cfg(not(feature = "auth"))]
async fn create_admin(_: &Settings, _: &str, _: &str, _: Option<&str>) -> anyhow::Result<()> {
    anyhow::bail!("this binary was built without the auth module")
}
