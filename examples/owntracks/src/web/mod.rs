//! The web server (axum): the page, the HTTP API and the live stream of new positions.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /` | the page (one self-contained HTML file: no CDN, no external tiles) |
//! | `GET /api/0/last[?user=&device=]` | the last position of every device |
//! | `GET /api/0/list[?user=]` | users, or a user's devices |
//! | `GET /api/0/locations?user=&device=[&from=&to=][&format=geojson]` | a track |
//! | `GET /api/0/stream` | server-sent events: each new position (`location`) and other payload (`event`) |
//! | `GET /api/0/config` | what the page needs to know (the optional tile URL) |
//! | `GET /api/0/stats` | the recorder's counters |

mod api;
mod live;

use axum::routing::get;
use axum::Router;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

use crate::recorder::Counters;
use crate::store::Store;

/// The page.
const PAGE: &str = include_str!("page.html");

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct WebState {
    /// The database.
    pub store: Store,
    /// New positions and events, as the recorder announces them.
    pub live: broadcast::Sender<Value>,
    /// The recorder's counters.
    pub counters: watch::Receiver<Counters>,
    /// A tile URL template (`https://tile.example/{z}/{x}/{y}.png`) the page draws under
    /// the tracks; none: the tracks on a plain grid.
    pub tile_url: Option<String>,
}

/// Turns true when the server shuts down: the live streams end then, so that an open page
/// does not hold the server's graceful shutdown.
#[derive(Debug, Clone)]
struct Closing(watch::Receiver<bool>);

impl Closing {
    /// Completes when the server shuts down (never, if nothing will say so).
    async fn wait(mut self) {
        if self.0.wait_for(|closing| *closing).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The routes; their live streams end when `closing` turns true.
fn routes(state: WebState, closing: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/", get(|| async { axum::response::Html(PAGE) }))
        .route("/api/0/last", get(api::last))
        .route("/api/0/list", get(api::list))
        .route("/api/0/locations", get(api::locations))
        .route("/api/0/config", get(api::config))
        .route("/api/0/stats", get(api::stats))
        .route("/api/0/stream", get(live::stream))
        .layer(axum::Extension(Closing(closing)))
        .with_state(state)
}

/// The routes (their live streams end only when the recorder's sender does).
pub fn router(state: WebState) -> Router {
    // The sender dropped at once: `closing` never turns true.
    let (_, receiver) = watch::channel(false);
    routes(state, receiver)
}

/// Serves the routes on `listener` until `shutdown` completes.
///
/// # Errors
/// The listener failed.
pub async fn serve(
    listener: TcpListener,
    state: WebState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (closing, receiver) = watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = closing.send(true);
    };
    axum::serve(listener, routes(state, receiver))
        .with_graceful_shutdown(shutdown)
        .await
}
