//! Shared helpers for the scenario tests.
#![allow(dead_code, unreachable_pub, missing_docs)]

use facteur_codec::{decode, Packet, ProtocolVersion, Publish, QoS, Status};
use facteur_session::{Config, Connection, Event, Instant, Role, Session, Store};

pub const V3: ProtocolVersion = ProtocolVersion::V3_1_1;
pub const V5: ProtocolVersion = ProtocolVersion::V5;

/// The heapless store most scenarios use: 8 in flight, 16 queued, 256-byte messages, 4 aliases.
pub type Fixed = facteur_session::HeaplessStore<8, 16, 256, 4>;

/// PUBLISH "a/b" "hi" with packet id 1 in 3.1.1: QoS 1, QoS 1 DUP, QoS 2, QoS 2 DUP (the
/// resends differ in the first byte only); then the four responses for id 1.
pub const PUB1: [u8; 11] = [
    0x32, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01, b'h', b'i',
];
pub const PUB1_DUP: [u8; 11] = [
    0x3A, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01, b'h', b'i',
];
pub const PUB2: [u8; 11] = [
    0x34, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01, b'h', b'i',
];
pub const PUB2_DUP: [u8; 11] = [
    0x3C, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01, b'h', b'i',
];
pub const PUBACK1: [u8; 4] = [0x40, 0x02, 0x00, 0x01];
pub const PUBREC1: [u8; 4] = [0x50, 0x02, 0x00, 0x01];
pub const PUBREL1: [u8; 4] = [0x62, 0x02, 0x00, 0x01];
pub const PUBCOMP1: [u8; 4] = [0x70, 0x02, 0x00, 0x01];

pub fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// A delivered message, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: QoS,
    pub dup: bool,
}

pub fn session<S: Store>(role: Role, version: ProtocolVersion) -> Session<S> {
    let mut s = Session::new(Config::new(role));
    s.on_connect(at(0), Connection::new(version, 0));
    s
}

pub fn message(topic: &str, payload: &'static [u8], qos: QoS) -> Publish<'static> {
    let topic: &'static str = Box::leak(topic.to_owned().into_boxed_str());
    let mut p = Publish::new(topic, payload);
    p.qos = qos;
    p
}

/// Every packet the session has to send now, as raw frames.
pub fn drain<S: Store>(s: &mut Session<S>, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while let Some(n) = s.poll_transmit(now, &mut buf).unwrap() {
        out.push(buf[..n].to_vec());
        assert!(out.len() < 10_000, "poll_transmit never ends");
    }
    out
}

pub fn events<S: Store>(s: &mut Session<S>) -> Vec<Event> {
    core::iter::from_fn(|| s.poll_event()).collect()
}

/// Decodes one frame and hands it to the session; returns what it delivered.
pub fn feed<S: Store>(
    s: &mut Session<S>,
    frame: &[u8],
    version: ProtocolVersion,
    now: Instant,
) -> Option<Got> {
    let Status::Complete(d) = decode(frame, version, 1 << 20).unwrap() else {
        panic!("incomplete frame {frame:?}")
    };
    assert_eq!(d.len, frame.len());
    s.handle(d.packet, now).map(|p| Got {
        topic: p.topic.to_owned(),
        payload: p.payload.to_vec(),
        qos: p.qos,
        dup: p.dup,
    })
}

/// Feeds every frame; returns the deliveries.
pub fn feed_all<S: Store>(
    s: &mut Session<S>,
    frames: &[Vec<u8>],
    version: ProtocolVersion,
    now: Instant,
) -> Vec<Got> {
    frames
        .iter()
        .filter_map(|f| feed(s, f, version, now))
        .collect()
}

/// The packet a frame holds, for matching.
pub fn kind(frame: &[u8], version: ProtocolVersion) -> String {
    let Status::Complete(d) = decode(frame, version, 1 << 20).unwrap() else {
        panic!()
    };
    match d.packet {
        Packet::Publish(p) => format!(
            "PUBLISH{}{}{}",
            p.qos as u8,
            if p.dup { " dup" } else { "" },
            p.packet_id.map(|i| format!(" #{i}")).unwrap_or_default()
        ),
        Packet::PubAck(r) => format!("PUBACK #{}", r.packet_id),
        Packet::PubRec(r) => format!("PUBREC #{}", r.packet_id),
        Packet::PubRel(r) => format!("PUBREL #{}", r.packet_id),
        Packet::PubComp(r) => format!("PUBCOMP #{}", r.packet_id),
        other => format!("{:?}", other.packet_type()),
    }
}

pub fn kinds(frames: &[Vec<u8>], version: ProtocolVersion) -> Vec<String> {
    frames.iter().map(|f| kind(f, version)).collect()
}

/// The exact bytes of a 5.0 DISCONNECT with `reason` and the reason string `why`.
pub fn disconnect_why(reason: u8, why: &str) -> Vec<u8> {
    let len = u8::try_from(why.len()).expect("a short reason string");
    let mut f = vec![0xE0, 5 + len, reason, 3 + len, 0x1F, 0x00, len];
    f.extend_from_slice(why.as_bytes());
    f
}
