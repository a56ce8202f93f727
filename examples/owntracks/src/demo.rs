//! `facteur-owntracks demo`: a broker (password file, ACL), the recorder, the web server
//! and the simulator in one process, with the page's URL printed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use facteur_client::{Options, Reconnect};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

use crate::broker_setup::{self, RECORDER_USER};
use crate::recorder::{self, Recorder};
use crate::simulator::{self, demo_devices};
use crate::store::Store;
use crate::web::{self, WebState};

/// What the demo runs with.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The address the broker and the web server listen on.
    pub bind: String,
    /// The broker's port (0: any free port).
    pub mqtt_port: u16,
    /// The web server's port (0: any free port).
    pub http_port: u16,
    /// The database; none: one in a temporary directory, gone at the end.
    pub database: Option<PathBuf>,
    /// Positions of each device published at start, a minute apart, ending now.
    pub history: usize,
    /// Then one position of each device this often.
    pub every: Duration,
    /// The page's optional tile URL.
    pub tile_url: Option<String>,
}

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Files or sockets.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The broker did not start.
    #[error("broker: {0}")]
    Broker(#[from] facteur_broker::StartError),
    /// The recorder or the simulator failed.
    #[error("MQTT client: {0}")]
    Client(#[from] facteur_client::Error),
    /// The database.
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// Runs the demo until Ctrl-C (or `stop`).
///
/// # Errors
/// Something could not start.
pub async fn run(
    options: DemoOptions,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DemoError> {
    let dir = tempfile_dir()?;
    let recorder_password = format!("{:016x}", fastrand::u64(..));
    let devices = demo_devices();
    let mut users: Vec<(String, String)> = devices
        .iter()
        .map(|d| (d.user.clone(), d.password.clone()))
        .collect();
    users.sort();
    users.dedup();
    users.push((RECORDER_USER.to_owned(), recorder_password.clone()));
    let (passwd, acl) = broker_setup::write_files(dir.path(), &users, 210_000)?;
    let broker = broker_setup::start_broker(&options.bind, options.mqtt_port, passwd, acl).await?;
    let mqtt: SocketAddr = broker.local_addrs()[0];

    let store = match &options.database {
        Some(path) => Store::open(path)?,
        None => Store::open(&dir.path().join("owntracks.sqlite"))?,
    };
    let (live, _) = broadcast::channel(1024);
    let mut recorder_options = recorder::options(client_options(mqtt), "owntracks-recorder");
    recorder_options.username = Some(RECORDER_USER.into());
    recorder_options.password = Some(recorder_password.into());
    let recorder = Recorder::start(recorder_options, store.clone(), live.clone()).await?;

    let listener = TcpListener::bind((options.bind.as_str(), options.http_port)).await?;
    let http = listener.local_addr()?;
    let state = WebState {
        store,
        live,
        counters: recorder.counters(),
        tile_url: options.tile_url.clone(),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let server = tokio::spawn(web::serve(listener, state, stopped(stop_rx.clone())));

    println!("OwnTracks demo");
    println!("  page:     http://{http}/");
    println!(
        "  broker:   mqtt://{mqtt} (users and ACL in {})",
        dir.path().display()
    );
    for (user, password) in users.iter().filter(|(u, _)| u != RECORDER_USER) {
        println!("  user:     {user} / {password}  (may publish to owntracks/{user}/#)");
    }
    println!("Ctrl-C stops.");

    let simulation = simulator::run(
        client_options(mqtt),
        devices,
        fastrand::u64(..),
        options.history,
        options.every,
        stopped(stop_rx),
    );
    let simulation = tokio::spawn(simulation);
    stop.await;
    let _ = stop_tx.send(true);
    if let Ok(Err(e)) = simulation.await {
        tracing::error!(error = %e, "simulator");
    }
    recorder.stop().await;
    let _ = server.await;
    broker.shutdown().await;
    Ok(())
}

fn client_options(addr: SocketAddr) -> Options {
    let mut options = Options::new(addr.ip().to_string(), addr.port());
    options.reconnect = Reconnect::default();
    options
}

fn tempfile_dir() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("facteur-owntracks-")
        .tempdir()
}
