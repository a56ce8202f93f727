//! `facteur-owntracks`: `record`: the OwnTracks recorder.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use facteur_client::Options;
use facteur_owntracks::recorder::Recorder;
use facteur_owntracks::store::Store;
use tokio::sync::broadcast;

#[derive(Debug, Parser)]
#[command(
    name = "facteur-owntracks",
    version,
    about = "OwnTracks location tracking on facteur"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Records a broker's OwnTracks positions into SQLite.
    Record {
        /// The broker (`mqtt://host:port`, `mqtts://`, `ws://`, `wss://`).
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        mqtt: String,
        /// MQTT username (read access to `owntracks/#`).
        #[arg(long)]
        user: Option<String>,
        /// MQTT password (or the environment variable OWNTRACKS_PASSWORD).
        #[arg(long, env = "OWNTRACKS_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// The SQLite file.
        #[arg(long, default_value = "owntracks.sqlite")]
        db: PathBuf,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("facteur-owntracks: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}

async fn run(command: Command) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Command::Record {
            mqtt,
            user,
            password,
            db,
        } => {
            let mut options = Options::from_url(&mqtt)?;
            options.client_id = "owntracks-recorder".into();
            if user.is_some() {
                options.username = user;
            }
            if let Some(password) = password {
                options.password = Some(password.into());
            }
            let store = Store::open(&db)?;
            let (live, _) = broadcast::channel(1024);
            let recorder = Recorder::start(options, store.clone(), live.clone()).await?;
            ctrl_c().await;
            drop(live);
            recorder.stop().await;
        }
    }
    Ok(())
}
