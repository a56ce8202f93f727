//! facteur-codec against rumqttc's codec, on the same bytes, in the same run.
//!
//! Every case encodes one packet with facteur, then measures:
//! * decode: facteur `decode` over the bytes (zero-copy borrow) vs rumqttc `Packet::read` over a
//!   `BytesMut` holding the same bytes (its input is prepared outside the timed part);
//! * encode: facteur `encode` into a reused `[u8]` vs rumqttc `write` into a reused `BytesMut`,
//!   each from a packet value built beforehand. A PUBLISH is prepared once
//!   (`Publish::prepare`, every check and the sizes) and each timed call sets the packet
//!   identifier and encodes (`facteur`); `facteur-wire-props` (5.0) does the same from the
//!   decoded packet, whose properties are wire bytes; `facteur-checked` times the one-shot
//!   `Publish::encode`, which checks on every call.
//!
//! Also the floor (a PUBLISH writer that checks nothing and knows its sizes), and a PUBLISH
//! decoder written with nom, for the hand-written vs nom comparison that
//! docs/performance.md records.
//!
//! Run: `cargo bench -p facteur-benches --bench codec` (`-- --noplot 'encode/publish|floor'`
//! for the PUBLISH encoders alone).

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use facteur_codec::{
    decode, Connect, Encode, Packet, PacketType, PreparedPublish, Properties, Property,
    ProtocolVersion, PubResponse, Publish, QoS, Status, Subscribe, Subscription, Will,
    PROTOCOL_MAX_PACKET_SIZE,
};
use std::num::NonZeroU16;

const V311: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;
const TOPIC: &str = "maison/etage1/salon/temperature";

fn encode_vec(packet: &Packet<'_>, v: ProtocolVersion) -> Vec<u8> {
    let mut buf = vec![0u8; packet.encoded_len(v).unwrap()];
    packet.encode(v, &mut buf).unwrap();
    buf
}

/// One benchmark case: a packet, its version, and rumqttc's view of the same bytes.
struct Case<'a> {
    name: String,
    version: ProtocolVersion,
    packet: Packet<'a>,
    /// The same packet with its checks done at every encode, timed beside (SUBSCRIBE built
    /// with `Subscribe::new` rather than `Subscribe::checked`).
    checked_at_encode: Option<Packet<'a>>,
}

fn rumqttc_read(v: ProtocolVersion, buf: &mut BytesMut) -> usize {
    if v.is_v5() {
        let p = rumqttc::v5::mqttbytes::v5::Packet::read(buf, None).unwrap();
        black_box(&p);
        p.size()
    } else {
        let p = rumqttc::mqttbytes::v4::Packet::read(buf, usize::MAX).unwrap();
        black_box(&p);
        p.size()
    }
}

// Built once per case, outside the timed part: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum RumqttcPacket {
    V4(rumqttc::mqttbytes::v4::Packet),
    V5(rumqttc::v5::mqttbytes::v5::Packet),
}

impl RumqttcPacket {
    fn from_bytes(v: ProtocolVersion, bytes: &[u8]) -> Self {
        let mut buf = BytesMut::from(bytes);
        if v.is_v5() {
            Self::V5(rumqttc::v5::mqttbytes::v5::Packet::read(&mut buf, None).unwrap())
        } else {
            Self::V4(rumqttc::mqttbytes::v4::Packet::read(&mut buf, usize::MAX).unwrap())
        }
    }

    /// Where this PUBLISH's payload lives (it was read out of its own copy of the bytes).
    fn payload(&self) -> Option<*const u8> {
        match self {
            Self::V4(rumqttc::mqttbytes::v4::Packet::Publish(p)) => Some(p.payload.as_ptr()),
            Self::V5(rumqttc::v5::mqttbytes::v5::Packet::Publish(p)) => Some(p.payload.as_ptr()),
            _ => None,
        }
    }

    fn write(&self, out: &mut BytesMut) -> usize {
        match self {
            Self::V4(p) => p.write(out, usize::MAX).unwrap(),
            Self::V5(p) => p.write(out, None).unwrap(),
        }
    }
}

/// The offset into a buffer at `dst` where a packet whose payload starts `payload_at` bytes in
/// lands that payload 2 KiB past `src` modulo 4 KiB.
fn offset_mod_4k(src: *const u8, payload_at: usize, dst: *const u8) -> usize {
    (src as usize + 2048 - payload_at).wrapping_sub(dst as usize) % 4096
}

fn facteur_decode(bytes: &[u8], v: ProtocolVersion) -> usize {
    match decode(bytes, v, PROTOCOL_MAX_PACKET_SIZE) {
        Ok(Status::Complete(d)) => {
            black_box(&d.packet);
            d.len
        }
        other => panic!("{other:?}"),
    }
}

fn bench_case(c: &mut Criterion, case: &Case<'_>) {
    let v = case.version;
    let bytes = encode_vec(&case.packet, v);
    // Both codecs must agree on these bytes before they are timed.
    let theirs = RumqttcPacket::from_bytes(v, &bytes);
    let mut check = BytesMut::new();
    assert_eq!(theirs.write(&mut check), bytes.len(), "{}", case.name);

    let mut group = c.benchmark_group(format!("decode/{}", case.name));
    group.throughput(Throughput::Elements(1));
    group.bench_function("facteur", |b| {
        b.iter(|| facteur_decode(black_box(&bytes), v))
    });
    group.bench_function("rumqttc", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&bytes[..]),
            |buf| rumqttc_read(v, buf),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group(format!("encode/{}", case.name));
    group.throughput(Throughput::Elements(1));
    // Where each side writes a PUBLISH: 2 KiB past its payload's source, modulo 4 KiB, so that
    // neither copy runs into 4K aliasing (a destination a little ahead of its source modulo
    // 4 KiB makes a 1 KiB copy twice as slow) wherever the allocator put the buffers.
    let is_publish = matches!(case.packet, Packet::Publish(_));
    let mut out_buf = vec![0u8; bytes.len() + 4096];
    let shift = match is_publish {
        true => offset_mod_4k(bytes.as_ptr(), 0, out_buf.as_ptr()),
        false => 0,
    };
    let out = &mut out_buf[shift..shift + bytes.len()];
    match case.packet {
        Packet::Publish(publish) => {
            // rumqttc's packet was read from `bytes`, so its topic and payload live there;
            // facteur's borrows them from the same bytes (the same alignment for the copies),
            // as a decoded packet does. They are sliced out by hand rather than decoded: a
            // second call site of `decode` here would change how it is inlined into the decode
            // bench above.
            let topic_at = bytes
                .windows(publish.topic.len())
                .position(|w| w == publish.topic.as_bytes())
                .unwrap();
            let topic = std::str::from_utf8(&bytes[topic_at..][..publish.topic.len()]).unwrap();
            let payload_at = bytes.len() - publish.payload.len();
            // 5.0: the property section between the packet id and the payload, its one-byte
            // length first; as wire bytes checked for PUBLISH, as the decoder leaves them.
            let section = &bytes[topic_at + topic.len() + 2..payload_at];
            let wire_props = match section.split_first() {
                Some((&len, contents)) if v.is_v5() => {
                    assert_eq!(usize::from(len), contents.len());
                    Properties::from_wire(contents, PacketType::Publish).unwrap()
                }
                _ => Properties::EMPTY,
            };
            let received = Publish {
                topic,
                payload: &bytes[payload_at..],
                properties: wire_props,
                ..publish
            };
            // As the caller built it: the properties from the caller's slice of `Property`.
            let built = Publish {
                properties: publish.properties,
                ..received
            };
            assert_eq!(built, publish);
            // What a client or broker does per packet: the message was prepared (checked and
            // sized) once, when it was built; each send sets its packet identifier and writes.
            let id = NonZeroU16::new(42).unwrap();
            let mut send = |name: &str, mut prepared: PreparedPublish<'_>| {
                prepared.set_packet_id(id).unwrap();
                assert_eq!(prepared.encode(out), Ok(bytes.len()));
                assert_eq!(
                    out,
                    &bytes[..],
                    "{name} writes the bytes both codecs agreed on"
                );
                group.bench_function(name, |b| {
                    b.iter(|| {
                        let prepared = black_box(&mut prepared);
                        prepared.set_packet_id(id).unwrap();
                        prepared.encode(out).unwrap()
                    })
                });
            };
            send("facteur", built.prepare(v).unwrap());
            // The same, prepared from the received packet: 5.0 properties are the validated
            // wire bytes, written as one copy (a broker forwarding what it received).
            if v.is_v5() {
                send("facteur-wire-props", received.prepare(v).unwrap());
            }
            // Header only, for a vectored write (these bytes, then the payload where it
            // already is): what a sender that does not copy the payload times. Not the same
            // output as the others, so not in the ratio; shown beside it.
            let mut head_only = built.prepare(v).unwrap();
            head_only.set_packet_id(id).unwrap();
            let n = head_only.encode_header(out).unwrap();
            assert_eq!([&out[..n], built.payload].concat(), bytes);
            group.bench_function("facteur-header-only", |b| {
                b.iter(|| {
                    let prepared = black_box(&mut head_only);
                    prepared.set_packet_id(id).unwrap();
                    prepared.encode_header(out).unwrap()
                })
            });
            // The one-shot checked path, `Publish::encode`: every check, the sizing and the
            // writes, per call.
            group.bench_function("facteur-checked", |b| {
                b.iter(|| black_box(&built).encode(v, out).unwrap())
            });
        }
        _ => {
            group.bench_function("facteur", |b| {
                b.iter(|| black_box(&case.packet).encode(v, out).unwrap())
            });
            if let Some(packet) = &case.checked_at_encode {
                // Not in the ratio: the same bytes with every check at every encode (rumqttc
                // checks filters, if at all, when its client builds the packet).
                assert_eq!(encode_vec(packet, v), bytes);
                group.bench_function("facteur-checked-at-encode", |b| {
                    b.iter(|| black_box(packet).encode(v, out).unwrap())
                });
            }
        }
    }
    let mut their_out = BytesMut::with_capacity(bytes.len() * 2 + 4096);
    if let (true, Some(src)) = (is_publish, theirs.payload()) {
        let payload_at = bytes.len()
            - match case.packet {
                Packet::Publish(p) => p.payload.len(),
                _ => unreachable!(),
            };
        let shift = offset_mod_4k(src, payload_at, their_out.as_ptr());
        their_out.resize(shift, 0);
        drop(their_out.split_to(shift));
        their_out.clear();
        theirs.write(&mut their_out);
        let at = their_out.as_ptr() as usize + payload_at;
        assert_eq!(at.wrapping_sub(src as usize) % 4096, 2048);
        assert!(
            their_out.capacity() >= bytes.len() * 2,
            "no reallocation while timed"
        );
    }
    group.bench_function("rumqttc", |b| {
        b.iter(|| {
            their_out.clear();
            black_box(&theirs).write(&mut their_out)
        })
    });
    group.finish();
}

/// A PUBLISH (3.1.1) decoder written with nom, checking what facteur checks on that path:
/// flags, QoS, length, UTF-8, topic rules, non-zero packet id.
mod with_nom {
    use nom::bytes::complete::take;
    use nom::number::complete::{be_u16, u8 as byte};
    use nom::IResult;

    pub struct NomPublish<'a> {
        pub qos: u8,
        pub topic: &'a str,
        pub packet_id: Option<u16>,
        pub payload: &'a [u8],
    }

    fn varint(mut input: &[u8]) -> IResult<&[u8], u32> {
        let mut value = 0u32;
        for i in 0..4 {
            let (rest, b) = byte(input)?;
            input = rest;
            value |= u32::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    break;
                }
                return Ok((input, value));
            }
        }
        Err(nom::Err::Failure(nom::error::Error::new(
            input,
            nom::error::ErrorKind::Verify,
        )))
    }

    fn fail<T>(input: &[u8]) -> IResult<&[u8], T> {
        Err(nom::Err::Failure(nom::error::Error::new(
            input,
            nom::error::ErrorKind::Verify,
        )))
    }

    pub fn publish(input: &[u8]) -> IResult<&[u8], NomPublish<'_>> {
        let (input, first) = byte(input)?;
        let qos = (first >> 1) & 3;
        if first >> 4 != 3 || qos == 3 || (qos == 0 && first & 0x08 != 0) {
            return fail(input);
        }
        let (input, len) = varint(input)?;
        let (rest, body) = take(len)(input)?;
        let (body, topic_len) = be_u16(body)?;
        let (body, topic) = take(topic_len)(body)?;
        let Ok(topic) = core::str::from_utf8(topic) else {
            return fail(body);
        };
        if facteur_topic::TopicName::new(topic).is_err() {
            return fail(body);
        }
        let (payload, packet_id) = if qos > 0 {
            let (b, id) = be_u16(body)?;
            if id == 0 {
                return fail(b);
            }
            (b, Some(id))
        } else {
            (body, None)
        };
        Ok((
            rest,
            NomPublish {
                qos,
                topic,
                packet_id,
                payload,
            },
        ))
    }
}

fn bench_nom(c: &mut Criterion) {
    for size in [64usize, 1024] {
        let payload = vec![0x5Au8; size];
        let publish = Publish {
            qos: QoS::AtLeastOnce,
            packet_id: Some(42),
            ..Publish::new(TOPIC, &payload)
        };
        let bytes = encode_vec(&Packet::Publish(publish), V311);
        let mut group = c.benchmark_group(format!("parser/publish-{size}B-3.1.1"));
        group.bench_function("hand-written", |b| {
            b.iter(|| facteur_decode(black_box(&bytes), V311))
        });
        group.bench_function("nom", |b| {
            b.iter(|| {
                let (_, p) = with_nom::publish(black_box(&bytes)).unwrap();
                black_box((p.qos, p.topic, p.packet_id, p.payload.len()))
            })
        });
        group.finish();
    }
}

fn codec(c: &mut Criterion) {
    let small = vec![0x5Au8; 64];
    let large = vec![0x5Au8; 1024];
    let props = [
        Property::MessageExpiryInterval(3600),
        Property::ContentType("application/json"),
        Property::UserProperty("unit", "celsius"),
    ];
    let publish = |payload: &'static [u8], props: Properties<'static>| Publish {
        qos: QoS::AtLeastOnce,
        packet_id: Some(42),
        properties: props,
        ..Publish::new(TOPIC, payload)
    };
    let small: &'static [u8] = Box::leak(small.into_boxed_slice());
    let large: &'static [u8] = Box::leak(large.into_boxed_slice());
    let props: &'static [Property<'static>] = Box::leak(Box::new(props));
    let will = Will {
        topic: "devices/sensor-42/status",
        payload: b"offline",
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: Properties::EMPTY,
    };
    let connect = Connect {
        will: Some(will),
        username: Some("sensor-42"),
        password: Some(b"correct horse battery staple"),
        ..Connect::new(V311, "sensor-42")
    };
    let subs = [
        Subscription::new("maison/+/temperature", QoS::AtLeastOnce),
        Subscription::new("maison/etage1/#", QoS::AtMostOnce),
        Subscription::new("owntracks/+/+", QoS::ExactlyOnce),
    ];
    let cases = [
        Case {
            name: "publish-64B-3.1.1".into(),
            version: V311,
            packet: Packet::Publish(publish(small, Properties::EMPTY)),
            checked_at_encode: None,
        },
        Case {
            name: "publish-1KiB-3.1.1".into(),
            version: V311,
            packet: Packet::Publish(publish(large, Properties::EMPTY)),
            checked_at_encode: None,
        },
        Case {
            name: "publish-64B-5.0-props".into(),
            version: V5,
            packet: Packet::Publish(publish(small, Properties::from_slice(props))),
            checked_at_encode: None,
        },
        Case {
            name: "publish-1KiB-5.0-props".into(),
            version: V5,
            packet: Packet::Publish(publish(large, Properties::from_slice(props))),
            checked_at_encode: None,
        },
        Case {
            name: "connect-3.1.1".into(),
            version: V311,
            packet: Packet::Connect(connect),
            checked_at_encode: None,
        },
        Case {
            name: "connect-5.0".into(),
            version: V5,
            packet: Packet::Connect(Connect {
                protocol: V5,
                ..connect
            }),
            checked_at_encode: None,
        },
        Case {
            name: "subscribe-3.1.1".into(),
            version: V311,
            packet: Packet::Subscribe(Subscribe::checked(7, &subs).unwrap()),
            checked_at_encode: Some(Packet::Subscribe(Subscribe::new(7, &subs))),
        },
        Case {
            name: "subscribe-5.0".into(),
            version: V5,
            packet: Packet::Subscribe(Subscribe::checked(7, &subs).unwrap()),
            checked_at_encode: Some(Packet::Subscribe(Subscribe::new(7, &subs))),
        },
        Case {
            name: "puback-3.1.1".into(),
            version: V311,
            packet: Packet::PubAck(PubResponse::new(42)),
            checked_at_encode: None,
        },
        Case {
            name: "puback-5.0".into(),
            version: V5,
            packet: Packet::PubAck(PubResponse::new(42)),
            checked_at_encode: None,
        },
    ];
    for case in &cases {
        bench_case(c, case);
    }
}

/// The floor: a PUBLISH writer that checks nothing and knows its sizes, to see how much room
/// there is between rumqttc's writer and the least a writer can do.
fn bench_floor(c: &mut Criterion) {
    let topic = TOPIC.as_bytes();
    for (name, size) in [("64B", 64usize), ("1KiB", 1024)] {
        let payload = vec![0x5Au8; size];
        // Placed like the codecs' outputs: the payload lands 2 KiB past its source.
        let mut buf = vec![0u8; size + 64 + 4096];
        let body = 2 + topic.len() + 2 + size;
        let payload_at = if body < 128 { 2 } else { 3 } + 2 + topic.len() + 2;
        let shift = offset_mod_4k(payload.as_ptr(), payload_at, buf.as_ptr());
        let out = &mut buf[shift..shift + size + 64];
        c.bench_function(&format!("floor/publish-{name}-3.1.1"), |b| {
            b.iter(|| {
                let topic = black_box(topic);
                let payload = black_box(&payload[..]);
                let out = &mut out[..];
                let body = 2 + topic.len() + 2 + payload.len();
                out[0] = 0x32;
                // The remaining length: one byte below 128, two up to 16,383 (both cases here).
                let h = if body < 128 {
                    out[1] = body as u8;
                    2
                } else {
                    out[1] = body as u8 | 0x80;
                    out[2] = (body >> 7) as u8;
                    3
                };
                out[h..h + 2].copy_from_slice(&(topic.len() as u16).to_be_bytes());
                out[h + 2..h + 2 + topic.len()].copy_from_slice(topic);
                let i = h + 2 + topic.len();
                out[i..i + 2].copy_from_slice(&42u16.to_be_bytes());
                out[i + 2..i + 2 + payload.len()].copy_from_slice(payload);
                black_box(i + 2 + payload.len())
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .sample_size(30);
    targets = codec, bench_nom, bench_floor
}
criterion_main!(benches);
