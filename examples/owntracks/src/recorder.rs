//! The recorder: a facteur-client subscribed to `owntracks/+/+` (positions and wills) and
//! `owntracks/+/+/+` (transitions, waypoints...), storing what it receives and announcing
//! each new position to the web page.
//!
//! QoS 1 messages are acknowledged only once handled (manual acknowledgements): when the
//! connection is lost (or the recorder stopped) between receipt and storage, the broker
//! sends the message again to the next connection of the session.
//! Malformed payloads, and messages the database failed to store, are counted, logged,
//! acknowledged and dropped; nothing a phone sends stops the recorder.

use std::time::Duration;

use facteur_client::{Client, Error, Message, Options, QoS};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::payload::{self, Payload};
use crate::store::{Store, Stored, StoredEvent};
use crate::topic;

/// The filters the recorder subscribes to.
pub const FILTERS: [&str; 2] = ["owntracks/+/+", "owntracks/+/+/+"];

/// What the recorder has seen since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Messages received.
    pub received: u64,
    /// New positions stored.
    pub locations: u64,
    /// Other payloads stored (transitions, waypoints, wills, unknown types).
    pub events: u64,
    /// Positions or payloads already stored (redeliveries, retained replays).
    pub duplicates: u64,
    /// Payloads that are not OwnTracks JSON, or messages on a topic that is not
    /// `owntracks/USER/DEVICE[/SUBTOPIC]`.
    pub malformed: u64,
    /// Empty payloads (a retained message being cleared): nothing to store.
    pub empty: u64,
    /// Messages the database failed to store (logged and dropped).
    pub store_errors: u64,
}

/// How long the broker keeps the recorder's session after its connection is lost (an
/// hour): the positions published meanwhile are queued for it and delivered when the
/// client reconnects.
pub const SESSION_EXPIRY: u32 = 3600;

/// The options of a recorder: client identifier `client_id` and a session that outlives
/// the connection ([`SESSION_EXPIRY`]), so that nothing is missed across a network cut, a
/// broker-side disconnection or a restart of the recorder within the hour.
///
/// A restarted recorder holds no session state of its own (facteur-client keeps none
/// across processes); it takes over the session the broker kept for it
/// ([`Options::adopt_session`](facteur_client::Options)): the positions published while it
/// was stopped are delivered to it then. It publishes nothing, so the risk that adoption
/// carries for a client's own QoS 2 publications does not apply.
pub fn options(mut options: Options, client_id: &str) -> Options {
    options.client_id = client_id.to_owned();
    options.clean_start = false;
    options.adopt_session = true;
    options.session_expiry = Some(SESSION_EXPIRY);
    options
}

/// A running recorder.
#[derive(Debug)]
pub struct Recorder {
    client: Client,
    counters: watch::Receiver<Counters>,
    task: JoinHandle<()>,
}

impl Recorder {
    /// Connects with `options` (manual acknowledgements are turned on), subscribes to
    /// [`FILTERS`] at QoS 1 and records into `store`; each new position and event is sent,
    /// as the HTTP API shows it, to `live`.
    ///
    /// # Errors
    /// The connection or a subscription failed (a refused filter included: the recorder's
    /// user may not read the OwnTracks topics).
    pub async fn start(
        mut options: Options,
        store: Store,
        live: broadcast::Sender<Value>,
    ) -> Result<Self, Error> {
        options.manual_acks = true;
        let (client, mut messages) = Client::connect(options).await?;
        for filter in FILTERS {
            client.subscribe(filter, QoS::AtLeastOnce).await?;
        }
        let (counters_tx, counters) = watch::channel(Counters::default());
        let task = tokio::spawn(async move {
            while let Some(message) = messages.recv().await {
                record(message, &store, &live, &counters_tx).await;
            }
        });
        Ok(Self {
            client,
            counters,
            task,
        })
    }

    /// The counters, updated after every message.
    pub fn counters(&self) -> watch::Receiver<Counters> {
        self.counters.clone()
    }

    /// Waits until `done` holds for the counters, at most `timeout`; the counters then.
    ///
    /// # Errors
    /// The counters when the time ran out.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl FnMut(&Counters) -> bool,
    ) -> Result<Counters, Counters> {
        let mut counters = self.counters.clone();
        let waited =
            tokio::time::timeout(timeout, async { counters.wait_for(done).await.map(|c| *c) })
                .await;
        match waited {
            Ok(Ok(c)) => Ok(c),
            _ => Err(*self.counters.borrow()),
        }
    }

    /// Disconnects, keeping the session at the broker for [`SESSION_EXPIRY`] (the next
    /// recorder with this client identifier takes it over: see [`options`]), then waits
    /// until every message received was recorded.
    pub async fn stop(self) {
        let _ = self.client.disconnect().await;
        let _ = self.task.await;
    }
}

async fn record(
    message: Message,
    store: &Store,
    live: &broadcast::Sender<Value>,
    counters: &watch::Sender<Counters>,
) {
    counters.send_modify(|c| c.received += 1);
    let outcome = store_message(&message, store, live).await;
    counters.send_modify(|c| match &outcome {
        Outcome::Location(Stored::New) => c.locations += 1,
        Outcome::Event(Stored::New) => c.events += 1,
        Outcome::Location(Stored::Duplicate) | Outcome::Event(Stored::Duplicate) => {
            c.duplicates += 1
        }
        Outcome::Malformed => c.malformed += 1,
        Outcome::Empty => c.empty += 1,
        Outcome::StoreFailed => c.store_errors += 1,
    });
    // Acknowledged once handled: stored, a duplicate, or not storable (logged, counted).
    message.ack().await;
}

enum Outcome {
    Location(Stored),
    Event(Stored),
    Malformed,
    Empty,
    StoreFailed,
}

async fn store_message(
    message: &Message,
    store: &Store,
    live: &broadcast::Sender<Value>,
) -> Outcome {
    let Some(parts) = topic::parse(&message.topic) else {
        tracing::warn!(topic = %message.topic, "not an OwnTracks topic: ignored");
        return Outcome::Malformed;
    };
    if message.payload.is_empty() {
        return Outcome::Empty;
    }
    let parsed = match payload::parse(&message.payload) {
        Ok(parsed) => parsed,
        Err(why) => {
            tracing::warn!(topic = %message.topic, %why, bytes = message.payload.len(), "malformed payload: ignored");
            return Outcome::Malformed;
        }
    };
    let (user, device) = (parts.user, parts.device);
    match parsed {
        Payload::Location(location) if parts.subtopic.is_none() => {
            match store.insert_location(user, device, &location).await {
                Ok(stored) => {
                    if stored == Stored::New {
                        let _ = live.send(location.to_api(user, device));
                    }
                    Outcome::Location(stored)
                }
                Err(e) => {
                    tracing::error!(topic = %message.topic, error = %e, "position not stored");
                    Outcome::StoreFailed
                }
            }
        }
        other => {
            let (kind, tst, raw) = match other {
                Payload::Location(l) => ("location".to_owned(), Some(l.tst), l.raw),
                Payload::Event { kind, tst, raw } => (kind, tst, raw),
            };
            let mut api = raw.clone();
            api.insert("user".into(), user.into());
            api.insert("device".into(), device.into());
            let event = StoredEvent {
                user: user.to_owned(),
                device: device.to_owned(),
                subtopic: parts.subtopic.map(str::to_owned),
                kind,
                tst,
                json: Value::Object(raw).to_string(),
            };
            match store.insert_event(event).await {
                Ok(stored) => {
                    if stored == Stored::New {
                        let _ = live.send(Value::Object(api));
                    }
                    Outcome::Event(stored)
                }
                Err(e) => {
                    tracing::error!(topic = %message.topic, error = %e, "payload not stored");
                    Outcome::StoreFailed
                }
            }
        }
    }
}
