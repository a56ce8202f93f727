//! A model-based test of the broker: random sequences of clients connecting (3.1.1 and
//! 5.0, persistent or clean sessions), subscribing, publishing, disconnecting, dropping
//! their connection, being taken over and reconnecting, over in-process streams
//! (`tokio::io::duplex` through `BrokerHandle::serve_stream`), checked against a small model
//! of which session must receive which message.
//!
//! Checked whenever a client is drained (PINGREQ/PINGRESP round trips until two in a row
//! bring nothing new: at `Sync` operations, before a client disconnects or is taken over,
//! and at the end), and on every delivery:
//! * every QoS 1/2 message routed to a session alive at publish time (connected, or offline
//!   and persistent) has reached that session's client, at the QoS the model expects;
//! * QoS 2 messages reach the client exactly once (duplicates are told apart by packet
//!   identifier, as a real receiver does);
//! * first deliveries keep publish order per subscriber, topic and QoS;
//! * a delivery belongs to the session it arrives on: a clean start never gets what was
//!   queued for the previous session, and nothing reaches a client that was not subscribed;
//! * CONNACK's session present flag is what the model says;
//! * a taken-over connection gets nothing but (5.0) DISCONNECT 0x8E, then its end;
//! * a forwarded Message Expiry Interval is never above the one published.
//!
//! At the end every persistent session is reconnected and drained, and the broker's
//! statistics must agree with the model.

use facteur_broker::{Broker, BrokerHandle, Config};
use facteur_codec::{
    decode, Connect, Disconnect, Encode, Packet, Properties, Property, ProtocolVersion,
    PubResponse, Publish, QoS, ReasonCode, Status, Subscribe, Subscription, SubscriptionOptions,
};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

const CLIENTS: [&str; 3] = ["m0", "m1", "m2"];
const TOPICS: [&str; 2] = ["m/a", "m/b"];
const FILTERS: [&str; 3] = ["m/#", "m/a", "m/b"];
/// The Message Expiry Interval of the publishes that carry one.
const EXPIRY: u32 = 3600;
/// The Session Expiry Interval of persistent 5.0 sessions.
const SESSION_EXPIRY: u32 = 300;
/// The longest any single read waits.
const WAIT: Duration = Duration::from_secs(3);
/// Each in-process pipe's buffer, either way.
const PIPE: usize = 64 * 1024;
/// Most PINGREQ round trips one drain makes.
const DRAIN_ROUNDS: usize = 64;
/// Most packets read while waiting for one.
const MAX_PACKETS: usize = 10_000;

fn filter_matches(filter: usize, topic: usize) -> bool {
    match FILTERS[filter] {
        "m/#" => true,
        exact => exact == TOPICS[topic],
    }
}

/// How a client connects. 3.1.1 has one flag: clean session 1 is a clean start and a
/// session that ends with the connection, 0 resumes and keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flags {
    v5: bool,
    clean: bool,
    persistent: bool,
}

impl Flags {
    fn version(self) -> ProtocolVersion {
        if self.v5 {
            ProtocolVersion::V5
        } else {
            ProtocolVersion::V3_1_1
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Connects the client if it has no connection (else nothing).
    Connect(usize, Flags),
    Subscribe {
        client: usize,
        filter: usize,
        qos: QoS,
    },
    Publish {
        client: usize,
        topic: usize,
        qos: QoS,
        expiry: bool,
    },
    /// DISCONNECT (normal), then the broker closes.
    Disconnect(usize),
    /// The client's stream is dropped without DISCONNECT.
    Drop(usize),
    /// A second connection with the same client identifier while the first is up.
    TakeOver(usize, Flags),
    /// Every connected client is drained, and must have everything its session is owed.
    Sync,
}

fn flags() -> impl Strategy<Value = Flags> {
    let persistent = prop_oneof![1 => Just(false), 3 => Just(true)];
    (any::<bool>(), any::<bool>(), persistent).prop_map(|(v5, clean, persistent)| Flags {
        v5,
        clean: if v5 { clean } else { !persistent },
        persistent,
    })
}

fn op() -> impl Strategy<Value = Op> {
    let client = 0..CLIENTS.len();
    let sub_qos = prop_oneof![Just(QoS::AtLeastOnce), Just(QoS::ExactlyOnce)];
    let pub_qos = prop_oneof![
        1 => Just(QoS::AtMostOnce),
        3 => Just(QoS::AtLeastOnce),
        3 => Just(QoS::ExactlyOnce),
    ];
    prop_oneof![
        3 => (client.clone(), flags()).prop_map(|(c, f)| Op::Connect(c, f)),
        3 => (client.clone(), 0..FILTERS.len(), sub_qos)
            .prop_map(|(client, filter, qos)| Op::Subscribe { client, filter, qos }),
        6 => (client.clone(), 0..TOPICS.len(), pub_qos, any::<bool>())
            .prop_map(|(client, topic, qos, expiry)| Op::Publish { client, topic, qos, expiry }),
        1 => client.clone().prop_map(Op::Disconnect),
        1 => client.clone().prop_map(Op::Drop),
        1 => (client, flags()).prop_map(|(c, f)| Op::TakeOver(c, f)),
        2 => Just(Op::Sync),
    ]
}

/// A session as the model sees it.
#[derive(Debug)]
struct SessionModel {
    /// Which incarnation of the client's session: a clean start makes a new one.
    epoch: u64,
    /// Outlives its connection.
    persistent: bool,
    /// Filter index → granted QoS.
    subs: BTreeMap<usize, QoS>,
}

/// A published message.
#[derive(Debug)]
struct Msg {
    topic: usize,
    /// Carries a Message Expiry Interval (only from 5.0 publishers).
    expiry: bool,
}

/// One network connection of a test client.
struct Conn {
    io: DuplexStream,
    version: ProtocolVersion,
    buf: Vec<u8>,
    /// The session incarnation this connection serves.
    epoch: u64,
    /// PUBLISH and PUBREL packets read so far (drains stop when a round trip adds none).
    traffic: usize,
}

/// A test client: its connection, and the receiver side of its session.
#[derive(Default)]
struct Client {
    conn: Option<Conn>,
    next_id: u16,
    /// QoS 2 packet identifiers received and answered with PUBREC, PUBREL not yet seen.
    qos2_pending: HashSet<u16>,
}

impl Client {
    fn packet_id(&mut self) -> u16 {
        self.next_id = self.next_id % u16::MAX + 1;
        self.next_id
    }
}

/// What reading a connection gave.
enum Read {
    Packet(Vec<u8>),
    Eof,
    Timeout,
}

async fn read_packet(conn: &mut Conn) -> Read {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match decode(&conn.buf, conn.version, u32::MAX) {
            Ok(Status::Complete(d)) => return Read::Packet(conn.buf.drain(..d.len).collect()),
            Ok(Status::Incomplete(_)) => {}
            Err(error) => panic!(
                "the broker sent a malformed packet: {error} {:02X?}",
                conn.buf
            ),
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, conn.io.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                assert!(conn.buf.is_empty(), "stream ended inside a packet");
                return Read::Eof;
            }
            Ok(Ok(n)) => conn.buf.extend_from_slice(&chunk[..n]),
            Err(_) => return Read::Timeout,
        }
    }
}

fn parse(bytes: &[u8], version: ProtocolVersion) -> Packet<'_> {
    match decode(bytes, version, u32::MAX) {
        Ok(Status::Complete(d)) => d.packet,
        other => panic!("not one packet: {other:?}"),
    }
}

async fn send(conn: &mut Conn, packet: &Packet<'_>) {
    let mut bytes = vec![0u8; packet.encoded_len(conn.version).unwrap()];
    packet.encode(conn.version, &mut bytes).unwrap();
    conn.io
        .write_all(&bytes)
        .await
        .unwrap_or_else(|e| panic!("write failed: {e} ({packet:?})"));
}

/// The broker, the test clients and the model.
struct World {
    broker: BrokerHandle,
    clients: Vec<Client>,
    sessions: Vec<Option<SessionModel>>,
    next_epoch: u64,
    messages: Vec<Msg>,
    /// (client, epoch, message) → the QoS it must be delivered at; QoS 0 ones may be lost.
    routed: HashMap<(usize, u64, usize), QoS>,
    /// Deliveries to the application per (client, epoch, message).
    delivered: HashMap<(usize, u64, usize), usize>,
    /// The last message first delivered per (client, epoch, topic, QoS).
    last: HashMap<(usize, u64, usize, u8), usize>,
    streams: u64,
}

impl World {
    async fn new() -> Self {
        let mut config = Config::default();
        config.listeners.clear();
        config.sys_interval = 0;
        let broker = Broker::start(config).await.expect("broker starts");
        Self {
            broker,
            clients: (0..CLIENTS.len()).map(|_| Client::default()).collect(),
            sessions: (0..CLIENTS.len()).map(|_| None).collect(),
            next_epoch: 0,
            messages: Vec::new(),
            routed: HashMap::new(),
            delivered: HashMap::new(),
            last: HashMap::new(),
            streams: 0,
        }
    }

    fn conn(&mut self, c: usize) -> &mut Conn {
        self.clients[c].conn.as_mut().expect("connected")
    }

    /// Reads client `c`'s connection until a packet `wanted` accepts, answering and
    /// checking every delivery on the way.
    async fn until(&mut self, c: usize, what: &str, wanted: impl Fn(&Packet<'_>) -> bool) {
        for _ in 0..MAX_PACKETS {
            let bytes = match read_packet(self.conn(c)).await {
                Read::Packet(bytes) => bytes,
                Read::Eof => panic!("{}: connection ended waiting for {what}", CLIENTS[c]),
                Read::Timeout => panic!("{}: no {what} within {WAIT:?}", CLIENTS[c]),
            };
            let version = self.conn(c).version;
            let packet = parse(&bytes, version);
            if self.incoming(c, &packet).await {
                continue;
            }
            if wanted(&packet) {
                return;
            }
            panic!("{}: unexpected {packet:?} waiting for {what}", CLIENTS[c]);
        }
        panic!(
            "{}: more than {MAX_PACKETS} packets waiting for {what}",
            CLIENTS[c]
        );
    }

    /// Handles a packet the broker sends unasked (PUBLISH, PUBREL); false for others.
    async fn incoming(&mut self, c: usize, packet: &Packet<'_>) -> bool {
        match packet {
            Packet::Publish(publish) => {
                self.conn(c).traffic += 1;
                let id = publish.packet_id;
                let duplicate = match (publish.qos, id) {
                    (QoS::ExactlyOnce, Some(id)) => !self.clients[c].qos2_pending.insert(id),
                    _ => false,
                };
                if !duplicate {
                    self.delivery(c, publish);
                }
                let conn = self.conn(c);
                match (publish.qos, id) {
                    (QoS::AtMostOnce, None) => {}
                    (QoS::AtLeastOnce, Some(id)) => {
                        send(conn, &Packet::PubAck(PubResponse::new(id))).await
                    }
                    (QoS::ExactlyOnce, Some(id)) => {
                        send(conn, &Packet::PubRec(PubResponse::new(id))).await
                    }
                    _ => panic!("PUBLISH with a packet identifier that does not fit its QoS"),
                }
                true
            }
            Packet::PubRel(rel) => {
                self.conn(c).traffic += 1;
                self.clients[c].qos2_pending.remove(&rel.packet_id);
                let conn = self.conn(c);
                send(conn, &Packet::PubComp(PubResponse::new(rel.packet_id))).await;
                true
            }
            Packet::Disconnect(d) => {
                panic!(
                    "{}: DISCONNECT {:?} from the broker",
                    CLIENTS[c], d.reason_code
                )
            }
            _ => false,
        }
    }

    /// Checks one delivery to the application against the model.
    fn delivery(&mut self, c: usize, publish: &Publish<'_>) {
        let conn = self.clients[c].conn.as_ref().unwrap();
        let (epoch, version) = (conn.epoch, conn.version);
        let n: usize = std::str::from_utf8(publish.payload)
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unknown payload {:02X?}", publish.payload));
        let who = CLIENTS[c];
        let key = (c, epoch, n);
        let Some(&qos) = self.routed.get(&key) else {
            panic!("{who}: message {n} delivered to session {epoch}, which it was never routed to");
        };
        let msg = &self.messages[n];
        assert_eq!(
            publish.topic, TOPICS[msg.topic],
            "{who}: message {n}'s topic"
        );
        assert_eq!(publish.qos, qos, "{who}: message {n}'s QoS");
        assert!(!publish.retain, "{who}: message {n} was not retained");
        let expiry = publish.properties.message_expiry_interval();
        if version.is_v5() && msg.expiry {
            match expiry {
                Some(left) => {
                    assert!(
                        left <= EXPIRY,
                        "{who}: message {n}'s expiry {left} > {EXPIRY}"
                    )
                }
                None => panic!("{who}: message {n} lost its expiry"),
            }
        } else {
            assert_eq!(expiry, None, "{who}: message {n} had no expiry");
        }
        let count = self.delivered.entry(key).or_default();
        *count += 1;
        if qos == QoS::ExactlyOnce {
            assert_eq!(*count, 1, "{who}: QoS 2 message {n} delivered twice");
        }
        if *count == 1 {
            let last = self
                .last
                .entry((c, epoch, msg.topic, qos as u8))
                .or_default();
            assert!(
                *last < n + 1,
                "{who}: message {n} on {} after message {} (QoS {qos:?})",
                publish.topic,
                *last - 1
            );
            *last = n + 1;
        }
    }

    /// PINGREQ round trips until two in a row bring no PUBLISH and no PUBREL, then checks
    /// that every message the session must get has arrived.
    async fn drain(&mut self, c: usize) {
        let mut quiet = 0;
        for _ in 0..DRAIN_ROUNDS {
            let before = self.conn(c).traffic;
            send(self.conn(c), &Packet::PingReq).await;
            self.until(c, "PINGRESP", |p| matches!(p, Packet::PingResp))
                .await;
            quiet = if self.conn(c).traffic == before {
                quiet + 1
            } else {
                0
            };
            if quiet == 2 {
                self.check_delivered(c);
                return;
            }
        }
        panic!(
            "{}: still receiving after {DRAIN_ROUNDS} round trips",
            CLIENTS[c]
        );
    }

    fn check_delivered(&self, c: usize) {
        let epoch = self.sessions[c]
            .as_ref()
            .expect("a connected client has a session")
            .epoch;
        let mut missing: Vec<_> = self
            .routed
            .iter()
            .filter(|(&(rc, re, _), &qos)| rc == c && re == epoch && qos != QoS::AtMostOnce)
            .map(|(&(_, _, n), _)| n)
            .filter(|n| !self.delivered.contains_key(&(c, epoch, *n)))
            .collect();
        missing.sort_unstable();
        assert!(
            missing.is_empty(),
            "{}: messages {missing:?} not delivered to session {epoch} once drained",
            CLIENTS[c]
        );
    }

    async fn drain_all(&mut self) {
        for c in 0..CLIENTS.len() {
            if self.clients[c].conn.is_some() {
                self.drain(c).await;
            }
        }
    }

    /// Opens a connection for client `c` and reads its CONNACK.
    async fn open(&mut self, c: usize, flags: Flags) -> (Conn, bool) {
        let (io, server) = tokio::io::duplex(PIPE);
        self.broker.serve_stream(server);
        self.streams += 1;
        let mut conn = Conn {
            io,
            version: flags.version(),
            buf: Vec::new(),
            epoch: u64::MAX,
            traffic: 0,
        };
        let props = [Property::SessionExpiryInterval(SESSION_EXPIRY)];
        let properties = if flags.v5 && flags.persistent {
            Properties::from_slice(&props)
        } else {
            Properties::EMPTY
        };
        let connect = Connect {
            clean_start: flags.clean,
            keep_alive: 0,
            properties,
            ..Connect::new(flags.version(), CLIENTS[c])
        };
        send(&mut conn, &Packet::Connect(connect)).await;
        let Read::Packet(bytes) = read_packet(&mut conn).await else {
            panic!("{}: no CONNACK", CLIENTS[c]);
        };
        let Packet::ConnAck(connack) = parse(&bytes, conn.version) else {
            panic!("{}: CONNACK expected, got {bytes:02X?}", CLIENTS[c]);
        };
        assert_eq!(connack.reason_code, ReasonCode::Success, "{}", CLIENTS[c]);
        (conn, connack.session_present)
    }

    /// The model's side of a connection accepted: the session resumes or starts afresh.
    fn settle(&mut self, c: usize, flags: Flags, resumes: bool, present: bool, mut conn: Conn) {
        assert_eq!(present, resumes, "{}: CONNACK session present", CLIENTS[c]);
        if !resumes {
            self.sessions[c] = Some(SessionModel {
                epoch: self.next_epoch,
                persistent: flags.persistent,
                subs: BTreeMap::new(),
            });
            self.next_epoch += 1;
            self.clients[c].qos2_pending.clear();
        }
        let session = self.sessions[c].as_mut().unwrap();
        session.persistent = flags.persistent;
        conn.epoch = session.epoch;
        self.clients[c].conn = Some(conn);
    }

    /// The connection of `c` is gone: a session that ends with it ends.
    fn connection_gone(&mut self, c: usize) {
        self.clients[c].conn = None;
        if self.sessions[c].as_ref().is_some_and(|s| !s.persistent) {
            self.sessions[c] = None;
        }
    }

    async fn apply(&mut self, op: &Op) {
        match *op {
            Op::Connect(c, flags) => {
                if self.clients[c].conn.is_some() {
                    return;
                }
                let resumes = !flags.clean && self.sessions[c].is_some();
                let (conn, present) = self.open(c, flags).await;
                self.settle(c, flags, resumes, present, conn);
            }
            Op::TakeOver(c, flags) => {
                let Some(old_version) = self.clients[c].conn.as_ref().map(|o| o.version) else {
                    return;
                };
                self.drain(c).await;
                let mut old = self.clients[c].conn.take().unwrap();
                let old_persistent = self.sessions[c].as_ref().unwrap().persistent;
                let resumes = !flags.clean && old_persistent;
                let (conn, present) = self.open(c, flags).await;
                // The old connection: nothing but (5.0) DISCONNECT 0x8E, then its end.
                let mut told = false;
                loop {
                    match read_packet(&mut old).await {
                        Read::Eof => break,
                        Read::Timeout => panic!("{}: taken-over connection left open", CLIENTS[c]),
                        Read::Packet(bytes) => match parse(&bytes, old.version) {
                            Packet::Disconnect(d) if old_version.is_v5() && !told => {
                                assert_eq!(d.reason_code, ReasonCode::SessionTakenOver);
                                told = true;
                            }
                            other => panic!("{}: {other:?} on a taken-over connection", CLIENTS[c]),
                        },
                    }
                }
                assert_eq!(told, old_version.is_v5(), "{}: DISCONNECT 0x8E", CLIENTS[c]);
                if !resumes {
                    self.sessions[c] = None;
                }
                self.settle(c, flags, resumes, present, conn);
            }
            Op::Subscribe {
                client: c,
                filter,
                qos,
            } => {
                if self.clients[c].conn.is_none() {
                    return;
                }
                let id = self.clients[c].packet_id();
                let subs = [Subscription {
                    filter: FILTERS[filter],
                    options: SubscriptionOptions::qos(qos),
                }];
                send(self.conn(c), &Packet::Subscribe(Subscribe::new(id, &subs))).await;
                let granted = std::cell::Cell::new(None);
                self.until(c, "SUBACK", |p| match p {
                    Packet::SubAck(ack) if ack.packet_id == id => {
                        granted.set(ack.reason_codes.iter().next());
                        true
                    }
                    _ => false,
                })
                .await;
                let want = match qos {
                    QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
                    _ => ReasonCode::GrantedQoS2,
                };
                assert_eq!(granted.get(), Some(want), "{}: SUBACK", CLIENTS[c]);
                let session = self.sessions[c].as_mut().unwrap();
                session.subs.insert(filter, qos);
            }
            Op::Publish {
                client: c,
                topic,
                qos,
                expiry,
            } => {
                if self.clients[c].conn.is_none() {
                    return;
                }
                let expiry = expiry && self.conn(c).version.is_v5();
                let n = self.messages.len();
                self.messages.push(Msg { topic, expiry });
                let payload = n.to_string();
                // Routed as the broker receives it: the publisher may be a subscriber, and
                // get its own message before its acknowledgement.
                for (s, session) in self.sessions.iter().enumerate() {
                    let Some(session) = session else { continue };
                    let granted = session
                        .subs
                        .iter()
                        .filter(|(&f, _)| filter_matches(f, topic))
                        .map(|(_, &q)| q)
                        .max_by_key(|&q| q as u8);
                    if let Some(granted) = granted {
                        let key = (s, session.epoch, n);
                        self.routed.insert(key, qos.min(granted));
                    }
                }
                let props = [Property::MessageExpiryInterval(EXPIRY)];
                let id = (qos != QoS::AtMostOnce).then(|| self.clients[c].packet_id());
                let publish = Publish {
                    qos,
                    packet_id: id,
                    properties: if expiry {
                        Properties::from_slice(&props)
                    } else {
                        Properties::EMPTY
                    },
                    ..Publish::new(TOPICS[topic], payload.as_bytes())
                };
                send(self.conn(c), &Packet::Publish(publish)).await;
                // Acknowledged (QoS 1/2) or followed by a PINGRESP (QoS 0): routed.
                match (qos, id) {
                    (QoS::AtLeastOnce, Some(id)) => {
                        self.until(c, "PUBACK", |p| matches!(p, Packet::PubAck(a) if a.packet_id == id && a.reason_code == ReasonCode::Success)).await;
                    }
                    (QoS::ExactlyOnce, Some(id)) => {
                        self.until(c, "PUBREC", |p| matches!(p, Packet::PubRec(a) if a.packet_id == id && a.reason_code == ReasonCode::Success)).await;
                        send(self.conn(c), &Packet::PubRel(PubResponse::new(id))).await;
                        self.until(
                            c,
                            "PUBCOMP",
                            |p| matches!(p, Packet::PubComp(a) if a.packet_id == id),
                        )
                        .await;
                    }
                    _ => {
                        send(self.conn(c), &Packet::PingReq).await;
                        self.until(c, "PINGRESP", |p| matches!(p, Packet::PingResp))
                            .await;
                    }
                }
            }
            Op::Disconnect(c) => {
                if self.clients[c].conn.is_none() {
                    return;
                }
                self.drain(c).await;
                let conn = self.conn(c);
                send(
                    conn,
                    &Packet::Disconnect(Disconnect::new(ReasonCode::Success)),
                )
                .await;
                match read_packet(conn).await {
                    Read::Eof => {}
                    Read::Timeout => panic!("{}: left open after DISCONNECT", CLIENTS[c]),
                    Read::Packet(bytes) => {
                        panic!("{}: {bytes:02X?} after DISCONNECT", CLIENTS[c])
                    }
                }
                self.connection_gone(c);
            }
            Op::Drop(c) => {
                if self.clients[c].conn.is_some() {
                    self.connection_gone(c);
                }
            }
            Op::Sync => self.drain_all().await,
        }
    }

    /// Reconnects every persistent session, drains everything, and compares the broker's
    /// statistics with the model.
    async fn finish(&mut self) {
        let resume = Flags {
            v5: true,
            clean: false,
            persistent: true,
        };
        for c in 0..CLIENTS.len() {
            if self.clients[c].conn.is_none() && self.sessions[c].is_some() {
                self.apply(&Op::Connect(c, resume)).await;
            }
        }
        self.drain_all().await;
        let connected = self.clients.iter().filter(|c| c.conn.is_some()).count();
        let sessions = self.sessions.iter().flatten().count();
        let subscriptions: usize = self.sessions.iter().flatten().map(|s| s.subs.len()).sum();
        // Sessions of dropped connections end when the broker sees the end of the stream;
        // the counts settle within the bound (no event to await: polled).
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut stats = self.broker.stats();
        while (stats.clients_connected, stats.sessions, stats.subscriptions)
            != (connected, sessions, subscriptions)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
            stats = self.broker.stats();
        }
        assert_eq!(stats.clients_connected, connected, "{stats:?}");
        assert_eq!(stats.sessions, sessions, "{stats:?}");
        assert_eq!(stats.subscriptions, subscriptions, "{stats:?}");
        assert_eq!(stats.connections, self.streams, "{stats:?}");
        assert_eq!(
            stats.messages_received,
            self.messages.len() as u64,
            "{stats:?}"
        );
        let distinct = self.delivered.len() as u64;
        assert!(
            stats.messages_sent >= distinct,
            "{stats:?}, {distinct} delivered"
        );
        let qos0 = self
            .routed
            .values()
            .filter(|&&q| q == QoS::AtMostOnce)
            .count();
        assert!(
            stats.dropped <= qos0 as u64,
            "{stats:?}, {qos0} QoS 0 routings"
        );
    }
}

fn run(start: Vec<Flags>, ops: Vec<Op>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut world = World::new().await;
        for (c, flags) in start.into_iter().enumerate() {
            world.apply(&Op::Connect(c, flags)).await;
        }
        for op in &ops {
            world.apply(op).await;
        }
        world.finish().await;
        let World {
            broker, clients, ..
        } = world;
        drop(clients);
        tokio::time::timeout(Duration::from_secs(10), broker.shutdown())
            .await
            .expect("the broker stops");
    });
}

proptest! {
    // 32 cases by default (a few seconds); MODEL_CASES=n for a longer search.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32),
        max_shrink_iters: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn broker_follows_the_model(
        start in proptest::collection::vec(flags(), CLIENTS.len()),
        ops in proptest::collection::vec(op(), 4..30),
    ) {
        run(start, ops);
    }
}
