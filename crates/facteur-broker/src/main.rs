//! The `facteur` program: `facteur broker [-c facteur.toml]`.

use clap::{Parser, Subcommand};
use facteur_broker::{Broker, Config};
use std::path::PathBuf;

/// facteur, an MQTT broker.
#[derive(Debug, Parser)]
#[command(name = "facteur", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the broker (the default). Without a configuration file it listens on
    /// 127.0.0.1:1883 only and accepts anonymous clients there.
    Broker {
        /// A TOML configuration file (see docs/configuration.md).
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = match cli.command {
        None | Some(Command::Broker { config: None }) => Ok(Config::default()),
        Some(Command::Broker { config: Some(path) }) => Config::load(&path),
    };
    let config = match config {
        Ok(config) => config,
        Err(error) => {
            eprintln!("facteur: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("facteur: cannot start the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let broker = match Broker::start(config).await {
            Ok(broker) => broker,
            Err(error) => {
                eprintln!("facteur: {error}");
                return std::process::ExitCode::FAILURE;
            }
        };
        wait_for_signal().await;
        tracing::info!("stopping");
        broker.shutdown().await;
        std::process::ExitCode::SUCCESS
    })
}

/// Ctrl-C, or SIGTERM on Unix.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
