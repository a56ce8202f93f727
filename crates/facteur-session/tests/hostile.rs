//! A hostile or confused peer: random PUBLISH/PUBREL/acknowledgement sequences with random
//! identifiers, topic aliases, and connection drops. The session must never panic, never
//! hold more unreleased QoS 2 identifiers than announced, and never deliver a QoS 2 message
//! twice between PUBLISH and PUBREL.

mod common;

use std::collections::HashSet;

use common::*;
use facteur_codec::{
    Encode, Packet, Properties, Property, ProtocolVersion, PubResponse, Publish, QoS,
};
use facteur_session::{AllocStore, Config, Connection, HeaplessStore, Role, Session, Store};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum In {
    Publish {
        qos: u8,
        id: u16,
        alias: Option<u16>,
        topic: bool,
    },
    PubRel(u16),
    PubAck(u16),
    PubRec(u16),
    PubComp(u16),
    PingReq,
    /// Write out everything pending.
    Drain,
    /// Connection lost and back.
    Reconnect,
}

fn input() -> impl Strategy<Value = In> {
    prop_oneof![
        6 => (0u8..3, 1u16..12, prop::option::of(1u16..6), any::<bool>())
            .prop_map(|(qos, id, alias, topic)| In::Publish { qos, id, alias, topic }),
        3 => (1u16..12).prop_map(In::PubRel),
        1 => (1u16..12).prop_map(In::PubAck),
        1 => (1u16..12).prop_map(In::PubRec),
        1 => (1u16..12).prop_map(In::PubComp),
        1 => Just(In::PingReq),
        3 => Just(In::Drain),
        1 => Just(In::Reconnect),
    ]
}

fn encode(packet: Packet<'_>, version: ProtocolVersion) -> Option<Vec<u8>> {
    let mut buf = [0u8; 256];
    let n = packet.encode(version, &mut buf).ok()?;
    Some(buf[..n].to_vec())
}

fn run<S: Store>(version: ProtocolVersion, inputs: &[In]) {
    let mut config = Config::new(Role::Server);
    config.receive_maximum = 4;
    config.topic_alias_maximum = 3;
    let mut s = Session::<S>::new(config);
    let connection = Connection::new(version, 0);
    s.on_connect(at(0), connection);
    let limit = usize::from(s.receive_maximum());
    let mut held: HashSet<u16> = HashSet::new();
    for (t, input) in inputs.iter().enumerate() {
        let now = at(t as u64);
        let frame = match *input {
            In::Publish {
                qos,
                id,
                alias,
                topic,
            } => {
                let qos = QoS::from_u8(qos).unwrap();
                let props = alias.map(Property::TopicAlias);
                let mut p = Publish::new(if topic { "a/b" } else { "" }, b"x");
                p.qos = qos;
                p.packet_id = (qos != QoS::AtMostOnce).then_some(id);
                p.properties = Properties::from_slice(props.as_slice());
                encode(Packet::Publish(p), version)
            }
            In::PubRel(id) => encode(Packet::PubRel(PubResponse::new(id)), version),
            In::PubAck(id) => encode(Packet::PubAck(PubResponse::new(id)), version),
            In::PubRec(id) => encode(Packet::PubRec(PubResponse::new(id)), version),
            In::PubComp(id) => encode(Packet::PubComp(PubResponse::new(id)), version),
            In::PingReq => encode(Packet::PingReq, version),
            In::Drain => {
                drain(&mut s, now);
                None
            }
            In::Reconnect => {
                s.on_connection_lost(now);
                s.on_connect(now, connection);
                None
            }
        };
        let Some(frame) = frame else { continue };
        let connected = s.is_connected();
        let got = feed(&mut s, &frame, version, now);
        if connected {
            match *input {
                In::Publish { qos: 2, id, .. } => {
                    if let Some(got) = got {
                        assert_eq!(got.topic, "a/b");
                        assert!(held.insert(id), "QoS 2 id {id} delivered twice");
                    }
                }
                In::PubRel(id) => {
                    held.remove(&id);
                }
                _ => {}
            }
        } else {
            assert!(got.is_none(), "delivered while not connected");
        }
        assert!(s.received() <= limit, "{} > {limit}", s.received());
        assert_eq!(s.received(), held.len());
        while s.poll_event().is_some() {}
        if !s.is_connected() {
            // The session gave up on this connection (protocol error): reconnect.
            drain(&mut s, now);
            s.on_connection_lost(now);
            s.on_connect(now, connection);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hostile_peer_v5_heapless(inputs in prop::collection::vec(input(), 0..150)) {
        run::<HeaplessStore<4, 4, 16, 2>>(ProtocolVersion::V5, &inputs);
    }

    #[test]
    fn hostile_peer_v3_heapless(inputs in prop::collection::vec(input(), 0..150)) {
        run::<HeaplessStore<4, 4, 16, 2>>(ProtocolVersion::V3_1_1, &inputs);
    }

    #[test]
    fn hostile_peer_v5_alloc(inputs in prop::collection::vec(input(), 0..150)) {
        run::<AllocStore>(ProtocolVersion::V5, &inputs);
    }
}
