//! `GET /api/0/stream`: server-sent events, one per new position (`event: location`) or
//! other payload (`event: event`, a will, a transition...), the data the JSON the API
//! gives for it.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Extension;
use futures_util::stream::{self, Stream};
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use super::{Closing, WebState};

pub(super) async fn stream(
    State(state): State<WebState>,
    Extension(closing): Extension<Closing>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = state.live.subscribe();
    let closing = Box::pin(closing.wait());
    let events = stream::unfold(
        (receiver, closing),
        |(mut receiver, mut closing)| async move {
            let next = tokio::select! {
                () = &mut closing => return None,
                next = receiver.recv() => next,
            };
            match next {
                Ok(value) => Some((Ok(event(value)), (receiver, closing))),
                // A slow page missed some: it reloads what it shows.
                Err(RecvError::Lagged(missed)) => {
                    let lagged = Event::default().event("lagged").data(missed.to_string());
                    Some((Ok(lagged), (receiver, closing)))
                }
                Err(RecvError::Closed) => None,
            }
        },
    );
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

fn event(value: Value) -> Event {
    let kind = match value.get("_type").and_then(Value::as_str) {
        Some("location") => "location",
        _ => "event",
    };
    Event::default()
        .event(kind)
        .data(super::api::with_iso(value).to_string())
}
