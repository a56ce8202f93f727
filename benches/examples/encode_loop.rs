//! Encodes one of the codec bench's non-PUBLISH packets `N` times, with facteur or rumqttc,
//! for instruction counts that are steadier than timings on a shared machine:
//!
//! ```text
//! cargo build --profile bench -p facteur-benches --example encode_loop
//! valgrind --tool=callgrind target/release/examples/encode_loop facteur puback-3.1.1 100000
//! ```
//!
//! Run it with two counts and divide the difference in instructions by the difference in
//! counts: that is the cost of one encode, set-up excluded. The packets are the bench's.
//!
//! `encode_loop time CASE ROUNDS` times both codecs instead, in interleaved rounds of 100,000
//! encodes, and prints the fastest round of each (a quick A/B check; criterion's medians are
//! what docs/performance.md reports).

use bytes::BytesMut;
use facteur_codec::{
    Connect, Encode, Packet, Properties, Property, ProtocolVersion, PubResponse, Publish, QoS,
    Subscribe, Subscription, Will,
};

const PROPS: [Property<'static>; 3] = [
    Property::MessageExpiryInterval(3600),
    Property::ContentType("application/json"),
    Property::UserProperty("unit", "celsius"),
];
use std::hint::black_box;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, who, case, n] = &args[..] else {
        panic!("usage: encode_loop facteur|prepared|rumqttc|time CASE N");
    };
    let n: u64 = n.parse().unwrap();
    let will = Will {
        topic: "devices/sensor-42/status",
        payload: b"offline",
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: Default::default(),
    };
    let connect = Connect {
        will: Some(will),
        username: Some("sensor-42"),
        password: Some(b"correct horse battery staple"),
        ..Connect::new(ProtocolVersion::V3_1_1, "sensor-42")
    };
    let subs = [
        Subscription::new("maison/+/temperature", QoS::AtLeastOnce),
        Subscription::new("maison/etage1/#", QoS::AtMostOnce),
        Subscription::new("owntracks/+/+", QoS::ExactlyOnce),
    ];
    let (v, packet) = match case.as_str() {
        "connect-3.1.1" => (ProtocolVersion::V3_1_1, Packet::Connect(connect)),
        "connect-5.0" => (
            ProtocolVersion::V5,
            Packet::Connect(Connect {
                protocol: ProtocolVersion::V5,
                ..connect
            }),
        ),
        "subscribe-3.1.1" => (
            ProtocolVersion::V3_1_1,
            Packet::Subscribe(Subscribe::new(7, &subs)),
        ),
        "subscribe-5.0" => (
            ProtocolVersion::V5,
            Packet::Subscribe(Subscribe::new(7, &subs)),
        ),
        "puback-3.1.1" => (
            ProtocolVersion::V3_1_1,
            Packet::PubAck(PubResponse::new(42)),
        ),
        "puback-5.0" => (ProtocolVersion::V5, Packet::PubAck(PubResponse::new(42))),
        // The bench's 64-byte 5.0 PUBLISH with its properties from a slice: `facteur` times
        // the one-shot checked encode, `prepared` the prepared one.
        "publish-64B-5.0-props" => (
            ProtocolVersion::V5,
            Packet::Publish(Publish {
                qos: QoS::AtLeastOnce,
                packet_id: Some(42),
                properties: Properties::from_slice(&PROPS),
                ..Publish::new("maison/etage1/salon/temperature", &[0x5A; 64])
            }),
        ),
        other => panic!("unknown case {other}"),
    };
    let len = packet.encoded_len(v).unwrap();
    let mut buf = vec![0u8; len];
    packet.encode(v, &mut buf).unwrap();
    match who.as_str() {
        "time" => {
            // Both codecs, interleaved rounds; the fastest round of each (the one least
            // disturbed by other work on a shared machine), in ns per encode.
            let mut out = vec![0u8; len];
            let mut theirs = BytesMut::with_capacity(len * 2);
            let mut input = BytesMut::from(&buf[..]);
            let v4 = (!v.is_v5())
                .then(|| rumqttc::mqttbytes::v4::Packet::read(&mut input, usize::MAX).unwrap());
            let v5 = v
                .is_v5()
                .then(|| rumqttc::v5::mqttbytes::v5::Packet::read(&mut input, None).unwrap());
            let (mut best_f, mut best_r) = (f64::MAX, f64::MAX);
            for _ in 0..n {
                let t = std::time::Instant::now();
                for _ in 0..100_000 {
                    black_box(black_box(&packet).encode(v, &mut out).unwrap());
                }
                best_f = best_f.min(t.elapsed().as_nanos() as f64 / 100_000.0);
                let t = std::time::Instant::now();
                if let Some(p) = &v4 {
                    for _ in 0..100_000 {
                        theirs.clear();
                        black_box(black_box(p).write(&mut theirs, usize::MAX).unwrap());
                    }
                } else if let Some(p) = &v5 {
                    for _ in 0..100_000 {
                        theirs.clear();
                        black_box(black_box(p).write(&mut theirs, None).unwrap());
                    }
                }
                best_r = best_r.min(t.elapsed().as_nanos() as f64 / 100_000.0);
            }
            assert_eq!(out, buf);
            assert_eq!(&theirs[..], &buf[..]);
            println!(
                "{case}: facteur {best_f:.2} ns, rumqttc {best_r:.2} ns, ratio {:.2}",
                best_r / best_f
            );
        }
        "prepared" => {
            let Packet::Publish(publish) = packet else {
                panic!("prepared: a PUBLISH case")
            };
            let mut prepared = publish.prepare(v).unwrap();
            let id = std::num::NonZeroU16::new(42).unwrap();
            let mut out = vec![0u8; len];
            for _ in 0..n {
                let prepared = black_box(&mut prepared);
                prepared.set_packet_id(id).unwrap();
                black_box(prepared.encode(&mut out).unwrap());
            }
            assert_eq!(out, buf);
        }
        "facteur" => {
            let mut out = vec![0u8; len];
            for _ in 0..n {
                black_box(black_box(&packet).encode(v, &mut out).unwrap());
            }
            assert_eq!(out, buf);
        }
        "rumqttc" => {
            let mut out = BytesMut::with_capacity(len * 2);
            let mut input = BytesMut::from(&buf[..]);
            if v.is_v5() {
                let p = rumqttc::v5::mqttbytes::v5::Packet::read(&mut input, None).unwrap();
                for _ in 0..n {
                    out.clear();
                    black_box(black_box(&p).write(&mut out, None).unwrap());
                }
            } else {
                let p = rumqttc::mqttbytes::v4::Packet::read(&mut input, usize::MAX).unwrap();
                for _ in 0..n {
                    out.clear();
                    black_box(black_box(&p).write(&mut out, usize::MAX).unwrap());
                }
            }
            assert_eq!(&out[..], &buf[..]);
        }
        other => panic!("unknown codec {other}"),
    }
}
