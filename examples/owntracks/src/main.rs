//! `facteur-owntracks`: `record`: the OwnTracks recorder and its web page.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use facteur_client::Options;
use facteur_owntracks::recorder::Recorder;
use facteur_owntracks::store::Store;
use facteur_owntracks::web::{self, WebState};
use tokio::net::TcpListener;
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
    /// Records a broker's OwnTracks positions into SQLite and serves the page and API.
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
        /// Address of the web server.
        #[arg(long, default_value = "127.0.0.1:8083")]
        http: SocketAddr,
        /// Tile URL template for the page's background.
        #[arg(long)]
        tile_url: Option<String>,
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
            http,
            tile_url,
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
            let listener = TcpListener::bind(http).await?;
            println!("page: http://{}/", listener.local_addr()?);
            let state = WebState {
                store,
                live,
                counters: recorder.counters(),
                tile_url,
            };
            web::serve(listener, state, ctrl_c()).await?;
            recorder.stop().await;
        }
    }
    Ok(())
}
