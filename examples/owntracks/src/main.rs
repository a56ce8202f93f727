//! `facteur-owntracks`: `record` (the recorder and its web page), `simulate` (simulated
//! phones) and `demo` (broker, recorder, web page and simulator together).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use facteur_client::{Options, Roots};
use facteur_owntracks::demo::{self, DemoOptions};
use facteur_owntracks::recorder::{self, Recorder};
use facteur_owntracks::simulator::{self, demo_devices};
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
    /// Broker (password file, ACL), recorder, web page and simulated phones in one
    /// process; prints the page's URL.
    Demo {
        /// Address of the broker and the web server.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        /// The broker's port (0: any free port).
        #[arg(long, default_value_t = 1883)]
        mqtt_port: u16,
        /// The web server's port (0: any free port).
        #[arg(long, default_value_t = 8083)]
        http_port: u16,
        /// The SQLite file (default: a temporary one).
        #[arg(long)]
        db: Option<PathBuf>,
        /// Positions of each device published at start, a minute apart.
        #[arg(long, default_value_t = 120)]
        history: usize,
        /// Seconds between live positions.
        #[arg(long, default_value_t = 3.0)]
        every: f64,
        /// Tile URL template for the page's background (`https://.../{z}/{x}/{y}.png`).
        #[arg(long)]
        tile_url: Option<String>,
    },
    /// Records a broker's OwnTracks positions into SQLite and serves the page and API.
    Record {
        /// The broker (`mqtt://host:port`, `mqtts://`, `ws://`, `wss://`).
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        mqtt: String,
        /// Trust only this CA (PEM) for `mqtts://` or `wss://` (a private CA).
        #[arg(long)]
        cafile: Option<PathBuf>,
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
    /// Simulated phones (alice/phone, alice/bike, bob/car, carol/phone, passwords
    /// USER-secret) publishing to a broker.
    Simulate {
        /// The broker.
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        mqtt: String,
        /// Positions of each device published at start, a minute apart.
        #[arg(long, default_value_t = 120)]
        history: usize,
        /// Seconds between live positions.
        #[arg(long, default_value_t = 3.0)]
        every: f64,
        /// Seed of the tracks.
        #[arg(long, default_value_t = 1)]
        seed: u64,
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

fn seconds(every: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(every)
        .ok()
        .filter(|d| *d >= Duration::from_millis(100))
        .ok_or_else(|| format!("--every {every}: at least 0.1 seconds"))
}

async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}

async fn run(command: Command) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Command::Demo {
            bind,
            mqtt_port,
            http_port,
            db,
            history,
            every,
            tile_url,
        } => {
            let options = DemoOptions {
                bind,
                mqtt_port,
                http_port,
                database: db,
                history,
                every: seconds(every)?,
                tile_url,
            };
            demo::run(options, ctrl_c()).await?;
        }
        Command::Record {
            mqtt,
            cafile,
            user,
            password,
            db,
            http,
            tile_url,
        } => {
            let mut options = recorder::options(Options::from_url(&mqtt)?, "owntracks-recorder");
            if let Some(cafile) = cafile {
                let tls = options
                    .transport
                    .tls_mut()
                    .ok_or("--cafile needs an mqtts:// or wss:// URL")?;
                tls.roots = Roots::CaFile(cafile);
            }
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
        Command::Simulate {
            mqtt,
            history,
            every,
            seed,
        } => {
            let every = seconds(every)?;
            let options = Options::from_url(&mqtt)?;
            simulator::run(options, demo_devices(), seed, history, every, ctrl_c()).await?;
        }
    }
    Ok(())
}
