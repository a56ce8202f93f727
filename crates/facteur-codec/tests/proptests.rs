//! Property tests: encode → decode is the identity for every packet type and version; decoding
//! arbitrary bytes never panics (and what decodes re-encodes to the same packet); a packet fed
//! in two parts at any split point is "incomplete", then the same packet. A prepared PUBLISH
//! writes what the checked encoder writes, and is refused exactly when the decoder would refuse
//! the packet.
//!
//! Generated strings and payloads are leaked so the borrowed packet types can be `'static`
//! inside the strategies; a test run leaks a few megabytes at most.

use facteur_codec::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

const MAX: u32 = PROTOCOL_MAX_PACKET_SIZE;

fn leak_str(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn leak<T>(v: Vec<T>) -> &'static [T] {
    Box::leak(v.into_boxed_slice())
}

fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![
        Just(ProtocolVersion::V3_1),
        Just(ProtocolVersion::V3_1_1),
        Just(ProtocolVersion::V5)
    ]
}

fn text() -> impl Strategy<Value = &'static str> {
    "[a-zA-Z0-9 éß€/+#$_-]{0,12}".prop_map(leak_str)
}

fn bytes() -> impl Strategy<Value = &'static [u8]> {
    vec(any::<u8>(), 0..40).prop_map(leak)
}

fn topic_name() -> impl Strategy<Value = &'static str> {
    "[a-z0-9é$]{0,4}(/[a-z0-9é]{0,4}){0,3}"
        .prop_filter("non-empty", |s| !s.is_empty())
        .prop_map(leak_str)
}

fn topic_filter() -> impl Strategy<Value = &'static str> {
    let level = prop_oneof![Just("a"), Just("bb"), Just("+"), Just(""), Just("é")];
    (vec(level, 1..4), any::<bool>(), option::of("[a-z]{1,3}")).prop_map(|(levels, hash, share)| {
        let mut s = levels.join("/");
        if hash {
            s.push_str(if s.is_empty() { "#" } else { "/#" });
        }
        if s.is_empty() {
            s.push('#');
        }
        if let Some(group) = share {
            s = format!("$share/{group}/{s}");
        }
        leak_str(s)
    })
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn packet_id() -> impl Strategy<Value = u16> {
    1..=u16::MAX
}

fn reason_for(kind: PacketType) -> impl Strategy<Value = ReasonCode> {
    let codes: Vec<ReasonCode> = (0..=255u8)
        .filter_map(ReasonCode::from_u8)
        .filter(|c| c.is_valid_for(kind))
        .collect();
    proptest::sample::select(codes)
}

fn user_properties() -> impl Strategy<Value = Vec<Property<'static>>> {
    vec(
        (text(), text()).prop_map(|(k, v)| Property::UserProperty(k, v)),
        0..4,
    )
}

/// Properties valid in a context: at most one of each optional property, any number of user
/// properties, shuffled.
fn props(
    singles: Vec<BoxedStrategy<Property<'static>>>,
    repeated: BoxedStrategy<Vec<Property<'static>>>,
) -> impl Strategy<Value = Properties<'static>> {
    let optional: Vec<_> = singles.into_iter().map(option::of).collect();
    (optional, user_properties(), repeated)
        .prop_flat_map(|(singles, users, repeated)| {
            let mut all: Vec<Property<'static>> = singles.into_iter().flatten().collect();
            all.extend(users);
            all.extend(repeated);
            Just(all).prop_shuffle()
        })
        .prop_map(|all| Properties::from_slice(leak(all)))
}

fn none() -> BoxedStrategy<Vec<Property<'static>>> {
    Just(Vec::new()).boxed()
}

fn u32_nonzero() -> impl Strategy<Value = u32> {
    1..=u32::MAX
}

fn flag() -> impl Strategy<Value = bool> {
    any::<bool>()
}

fn publish_props() -> impl Strategy<Value = Properties<'static>> {
    props(
        vec![
            prop_oneof![Just(PayloadFormat::Unspecified), Just(PayloadFormat::Utf8)]
                .prop_map(Property::PayloadFormatIndicator)
                .boxed(),
            any::<u32>()
                .prop_map(Property::MessageExpiryInterval)
                .boxed(),
            text().prop_map(Property::ContentType).boxed(),
            topic_name().prop_map(Property::ResponseTopic).boxed(),
            bytes().prop_map(Property::CorrelationData).boxed(),
            (1..=u16::MAX).prop_map(Property::TopicAlias).boxed(),
        ],
        vec(
            (1..=VARINT_MAX).prop_map(Property::SubscriptionIdentifier),
            0..3,
        )
        .boxed(),
    )
}

fn will_props() -> impl Strategy<Value = Properties<'static>> {
    props(
        vec![
            prop_oneof![Just(PayloadFormat::Unspecified), Just(PayloadFormat::Utf8)]
                .prop_map(Property::PayloadFormatIndicator)
                .boxed(),
            any::<u32>()
                .prop_map(Property::MessageExpiryInterval)
                .boxed(),
            text().prop_map(Property::ContentType).boxed(),
            topic_name().prop_map(Property::ResponseTopic).boxed(),
            bytes().prop_map(Property::CorrelationData).boxed(),
            any::<u32>().prop_map(Property::WillDelayInterval).boxed(),
        ],
        none(),
    )
}

fn connect_props() -> impl Strategy<Value = Properties<'static>> {
    props(
        vec![
            any::<u32>()
                .prop_map(Property::SessionExpiryInterval)
                .boxed(),
            (1..=u16::MAX).prop_map(Property::ReceiveMaximum).boxed(),
            u32_nonzero().prop_map(Property::MaximumPacketSize).boxed(),
            any::<u16>().prop_map(Property::TopicAliasMaximum).boxed(),
            flag()
                .prop_map(Property::RequestResponseInformation)
                .boxed(),
            flag().prop_map(Property::RequestProblemInformation).boxed(),
            text().prop_map(Property::AuthenticationMethod).boxed(),
            bytes().prop_map(Property::AuthenticationData).boxed(),
        ],
        none(),
    )
}

fn connack_props() -> impl Strategy<Value = Properties<'static>> {
    props(
        vec![
            any::<u32>()
                .prop_map(Property::SessionExpiryInterval)
                .boxed(),
            (1..=u16::MAX).prop_map(Property::ReceiveMaximum).boxed(),
            prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)]
                .prop_map(Property::MaximumQoS)
                .boxed(),
            flag().prop_map(Property::RetainAvailable).boxed(),
            u32_nonzero().prop_map(Property::MaximumPacketSize).boxed(),
            text().prop_map(Property::AssignedClientIdentifier).boxed(),
            any::<u16>().prop_map(Property::TopicAliasMaximum).boxed(),
            text().prop_map(Property::ReasonString).boxed(),
            flag()
                .prop_map(Property::WildcardSubscriptionAvailable)
                .boxed(),
            flag()
                .prop_map(Property::SubscriptionIdentifierAvailable)
                .boxed(),
            flag()
                .prop_map(Property::SharedSubscriptionAvailable)
                .boxed(),
            any::<u16>().prop_map(Property::ServerKeepAlive).boxed(),
            text().prop_map(Property::ResponseInformation).boxed(),
            text().prop_map(Property::ServerReference).boxed(),
            text().prop_map(Property::AuthenticationMethod).boxed(),
            bytes().prop_map(Property::AuthenticationData).boxed(),
        ],
        none(),
    )
}

fn reason_string_props() -> impl Strategy<Value = Properties<'static>> {
    props(
        vec![text().prop_map(Property::ReasonString).boxed()],
        none(),
    )
}

fn disconnect_props() -> impl Strategy<Value = Properties<'static>> {
    props(
        vec![
            any::<u32>()
                .prop_map(Property::SessionExpiryInterval)
                .boxed(),
            text().prop_map(Property::ReasonString).boxed(),
            text().prop_map(Property::ServerReference).boxed(),
        ],
        none(),
    )
}

fn auth_props() -> impl Strategy<Value = Properties<'static>> {
    props(
        vec![
            text().prop_map(Property::AuthenticationMethod).boxed(),
            bytes().prop_map(Property::AuthenticationData).boxed(),
            text().prop_map(Property::ReasonString).boxed(),
        ],
        none(),
    )
}

fn v5_only<T: Clone + std::fmt::Debug + 'static>(
    v: ProtocolVersion,
    strategy: impl Strategy<Value = T> + 'static,
    default: T,
) -> BoxedStrategy<T> {
    if v.is_v5() {
        strategy.boxed()
    } else {
        Just(default).boxed()
    }
}

fn connect(v: ProtocolVersion) -> impl Strategy<Value = Packet<'static>> {
    let will = (
        topic_name(),
        bytes(),
        qos(),
        flag(),
        v5_only(v, will_props(), Properties::EMPTY),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        });
    (
        flag(),
        any::<u16>(),
        "[a-zA-Z0-9]{0,23}".prop_map(leak_str),
        option::of(will),
        option::of(text()),
        option::of(bytes()),
        v5_only(v, connect_props(), Properties::EMPTY),
    )
        .prop_map(
            move |(clean_start, keep_alive, client_id, will, username, password, properties)| {
                // Before 5.0 a password needs a user name.
                let password = if v.is_v5() || username.is_some() {
                    password
                } else {
                    None
                };
                Packet::Connect(Connect {
                    protocol: v,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                })
            },
        )
}

fn connack(v: ProtocolVersion) -> impl Strategy<Value = Packet<'static>> {
    let code = if v.is_v5() {
        reason_for(PacketType::ConnAck).boxed()
    } else {
        (0..=5u8)
            .prop_filter_map("v3 code", ReasonCode::from_v3_connack)
            .boxed()
    };
    (flag(), code, v5_only(v, connack_props(), Properties::EMPTY)).prop_map(
        |(present, reason_code, properties)| {
            Packet::ConnAck(ConnAck {
                session_present: present && !reason_code.is_error(),
                reason_code,
                properties,
            })
        },
    )
}

fn publish(v: ProtocolVersion) -> impl Strategy<Value = Packet<'static>> {
    (
        qos(),
        flag(),
        flag(),
        topic_name(),
        packet_id(),
        v5_only(v, publish_props(), Properties::EMPTY),
        vec(any::<u8>(), 0..300).prop_map(leak),
        flag(),
    )
        .prop_map(
            move |(qos, dup, retain, topic, id, properties, payload, drop_topic)| {
                let aliased = properties.topic_alias().is_some();
                Packet::Publish(Publish {
                    dup: dup && qos != QoS::AtMostOnce,
                    qos,
                    retain,
                    topic: if aliased && drop_topic { "" } else { topic },
                    packet_id: (qos != QoS::AtMostOnce).then_some(id),
                    properties,
                    payload,
                })
            },
        )
}

/// A valid PUBLISH for its version (see [`publish`]).
fn valid_publish() -> impl Strategy<Value = (ProtocolVersion, Publish<'static>)> {
    version().prop_flat_map(|v| {
        (
            Just(v),
            publish(v).prop_map(|p| match p {
                Packet::Publish(p) => p,
                _ => unreachable!(),
            }),
        )
    })
}

/// A PUBLISH that may break any rule: wildcards or an empty topic, a packet identifier that
/// does not fit the QoS or is 0, DUP at QoS 0, properties of other packets, repeated or out of
/// range.
fn any_publish() -> impl Strategy<Value = (ProtocolVersion, Publish<'static>)> {
    let property = prop_oneof![
        (0..3u16).prop_map(Property::TopicAlias),
        any::<u32>().prop_map(Property::MessageExpiryInterval),
        (0..3u32).prop_map(Property::SubscriptionIdentifier),
        text().prop_map(Property::ContentType),
        text().prop_map(Property::ResponseTopic),
        (text(), text()).prop_map(|(k, v)| Property::UserProperty(k, v)),
        any::<u32>().prop_map(Property::SessionExpiryInterval),
        (0..3u16).prop_map(Property::ReceiveMaximum),
        text().prop_map(Property::ReasonString),
    ];
    (
        version(),
        qos(),
        flag(),
        flag(),
        prop_oneof![topic_name(), text()],
        option::of(prop_oneof![Just(0u16), packet_id()]),
        vec(property, 0..4).prop_map(|list| Properties::from_slice(leak(list))),
        bytes(),
    )
        .prop_map(
            |(v, qos, dup, retain, topic, packet_id, properties, payload)| {
                let publish = Publish {
                    dup,
                    qos,
                    retain,
                    topic,
                    packet_id,
                    properties,
                    payload,
                };
                (v, publish)
            },
        )
}

/// A variable byte integer, written without the codec.
fn varint(mut value: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The PUBLISH written as given, checking nothing: the decoder is the judge of these bytes.
fn unchecked_publish(p: &Publish<'_>, v: ProtocolVersion) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend((p.topic.len() as u16).to_be_bytes());
    body.extend(p.topic.as_bytes());
    if let Some(id) = p.packet_id {
        body.extend(id.to_be_bytes());
    }
    if v.is_v5() {
        let mut props = vec![0u8; p.properties.contents_len()];
        p.properties
            .write_contents(&mut SliceWriter::new(&mut props));
        varint(props.len(), &mut body);
        body.extend(props);
    }
    body.extend(p.payload);
    let first = 0x30 | u8::from(p.dup) << 3 | (p.qos as u8) << 1 | u8::from(p.retain);
    let mut out = vec![first];
    varint(body.len(), &mut out);
    out.extend(body);
    out
}

/// Every way facteur encodes a PUBLISH, which must all agree: `prepare` then `encode`,
/// `encode_to`, `encode_header` + payload; `Publish::encode`; `Packet::encode`.
fn prepared_bytes(p: &Publish<'_>, v: ProtocolVersion) -> Result<Vec<u8>, EncodeError> {
    let prepared = match p.prepare(v) {
        Ok(prepared) => prepared,
        Err(e) => {
            assert_eq!(p.encoded_len(v), Err(e));
            assert_eq!(Packet::Publish(*p).encoded_len(v), Err(e));
            assert_eq!(p.encode(v, &mut [0u8; 512]), Err(e));
            assert_eq!(Packet::Publish(*p).encode(v, &mut [0u8; 512]), Err(e));
            return Err(e);
        }
    };
    let len = prepared.encoded_len();
    let mut fast = vec![0u8; len];
    assert_eq!(prepared.encode(&mut fast), Ok(len));
    let mut checked = vec![0u8; len];
    assert_eq!(p.encode(v, &mut checked), Ok(len));
    assert_eq!(fast, checked);
    let mut generic = vec![0u8; len];
    assert_eq!(Packet::Publish(*p).encode(v, &mut generic), Ok(len));
    assert_eq!(fast, generic);
    let mut sink = vec![0u8; len + 3];
    let mut w = SliceWriter::new(&mut sink);
    assert_eq!(prepared.encode_to(&mut w), Ok(len));
    assert_eq!(&sink[..len], &fast[..]);
    let mut head = vec![0u8; len];
    let n = prepared.encode_header(&mut head).unwrap();
    assert_eq!([&head[..n], p.payload].concat(), fast);
    assert_eq!(prepared.publish(), *p);
    Ok(fast)
}

fn pub_response(v: ProtocolVersion) -> impl Strategy<Value = Packet<'static>> {
    let kind = prop_oneof![
        Just(PacketType::PubAck),
        Just(PacketType::PubRec),
        Just(PacketType::PubRel),
        Just(PacketType::PubComp)
    ];
    kind.prop_flat_map(move |kind| {
        (
            packet_id(),
            v5_only(v, reason_for(kind), ReasonCode::Success),
            v5_only(v, reason_string_props(), Properties::EMPTY),
        )
            .prop_map(move |(packet_id, reason_code, properties)| {
                let r = PubResponse {
                    packet_id,
                    reason_code,
                    properties,
                };
                match kind {
                    PacketType::PubAck => Packet::PubAck(r),
                    PacketType::PubRec => Packet::PubRec(r),
                    PacketType::PubRel => Packet::PubRel(r),
                    _ => Packet::PubComp(r),
                }
            })
    })
}

fn subscription(v: ProtocolVersion) -> impl Strategy<Value = Subscription<'static>> {
    let handling = prop_oneof![
        Just(RetainHandling::SendOnSubscribe),
        Just(RetainHandling::SendIfNew),
        Just(RetainHandling::DoNotSend)
    ];
    (topic_filter(), qos(), flag(), flag(), handling).prop_map(move |(filter, qos, nl, rap, rh)| {
        let options = if v.is_v5() {
            SubscriptionOptions {
                qos,
                no_local: nl,
                retain_as_published: rap,
                retain_handling: rh,
            }
        } else {
            SubscriptionOptions::qos(qos)
        };
        Subscription { filter, options }
    })
}

fn subscribe(v: ProtocolVersion) -> impl Strategy<Value = Packet<'static>> {
    let sub_props = props(
        vec![(1..=VARINT_MAX)
            .prop_map(Property::SubscriptionIdentifier)
            .boxed()],
        none(),
    );
    (
        packet_id(),
        v5_only(v, sub_props, Properties::EMPTY),
        vec(subscription(v), 1..5),
    )
        .prop_map(|(packet_id, properties, subs)| {
            Packet::Subscribe(Subscribe {
                properties,
                ..Subscribe::new(packet_id, leak(subs))
            })
        })
}

fn suback(v: ProtocolVersion) -> impl Strategy<Value = Packet<'static>> {
    let code = if v.is_v5() {
        reason_for(PacketType::SubAck).boxed()
    } else {
        proptest::sample::select(vec![
            ReasonCode::Success,
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS2,
            ReasonCode::UnspecifiedError,
        ])
        .boxed()
    };
    (
        packet_id(),
        v5_only(v, reason_string_props(), Properties::EMPTY),
        vec(code, 1..5),
    )
        .prop_map(|(packet_id, properties, codes)| {
            Packet::SubAck(SubAck {
                properties,
                ..SubAck::new(packet_id, leak(codes))
            })
        })
}

fn unsubscribe(v: ProtocolVersion) -> impl Strategy<Value = Packet<'static>> {
    (
        packet_id(),
        v5_only(v, props(vec![], none()), Properties::EMPTY),
        vec(topic_filter(), 1..5),
    )
        .prop_map(|(packet_id, properties, filters)| {
            Packet::Unsubscribe(Unsubscribe {
                properties,
                ..Unsubscribe::new(packet_id, leak(filters))
            })
        })
}

fn unsuback(v: ProtocolVersion) -> impl Strategy<Value = Packet<'static>> {
    (
        packet_id(),
        v5_only(v, reason_string_props(), Properties::EMPTY),
        v5_only(v, vec(reason_for(PacketType::UnsubAck), 1..5), Vec::new()),
    )
        .prop_map(|(packet_id, properties, codes)| {
            Packet::UnsubAck(UnsubAck {
                properties,
                ..UnsubAck::new(packet_id, leak(codes))
            })
        })
}

fn disconnect(v: ProtocolVersion) -> impl Strategy<Value = Packet<'static>> {
    (
        v5_only(v, reason_for(PacketType::Disconnect), ReasonCode::Success),
        v5_only(v, disconnect_props(), Properties::EMPTY),
    )
        .prop_map(|(reason_code, properties)| {
            Packet::Disconnect(Disconnect {
                reason_code,
                properties,
            })
        })
}

fn auth() -> impl Strategy<Value = Packet<'static>> {
    (reason_for(PacketType::Auth), auth_props()).prop_map(|(reason_code, properties)| {
        Packet::Auth(Auth {
            reason_code,
            properties,
        })
    })
}

/// Any valid packet for any version, with that version.
fn any_packet() -> impl Strategy<Value = (ProtocolVersion, Packet<'static>)> {
    version().prop_flat_map(|v| {
        let mut kinds = vec![
            connect(v).boxed(),
            connack(v).boxed(),
            publish(v).boxed(),
            pub_response(v).boxed(),
            subscribe(v).boxed(),
            suback(v).boxed(),
            unsubscribe(v).boxed(),
            unsuback(v).boxed(),
            Just(Packet::PingReq).boxed(),
            Just(Packet::PingResp).boxed(),
            disconnect(v).boxed(),
        ];
        if v.is_v5() {
            kinds.push(auth().boxed());
        }
        (Just(v), proptest::strategy::Union::new(kinds))
    })
}

fn encode_vec(packet: &Packet<'_>, v: ProtocolVersion) -> Vec<u8> {
    let len = packet.encoded_len(v).expect("valid packet encodes");
    let mut buf = vec![0u8; len];
    assert_eq!(packet.encode(v, &mut buf), Ok(len));
    buf
}

/// Touches every lazily read part of a decoded packet.
fn walk(packet: &Packet<'_>) -> usize {
    let props = |p: &Properties<'_>| p.iter().count();
    match packet {
        Packet::Connect(c) => props(&c.properties) + c.will.map_or(0, |w| props(&w.properties)),
        Packet::ConnAck(c) => props(&c.properties),
        Packet::Publish(p) => props(&p.properties) + p.payload.len(),
        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
            props(&r.properties)
        }
        Packet::Subscribe(s) => props(&s.properties) + s.subscriptions.iter().count(),
        Packet::SubAck(s) => props(&s.properties) + s.reason_codes.iter().count(),
        Packet::Unsubscribe(u) => props(&u.properties) + u.filters.iter().count(),
        Packet::UnsubAck(u) => props(&u.properties) + u.reason_codes.iter().count(),
        Packet::Disconnect(d) => props(&d.properties),
        Packet::Auth(a) => props(&a.properties),
        Packet::PingReq | Packet::PingResp => 0,
    }
}

/// Decode must not panic; whatever decodes must encode, and decode again to the same packet.
fn check_arbitrary(bytes: &[u8], v: ProtocolVersion) {
    if let Ok(Status::Complete(decoded)) = decode(bytes, v, MAX) {
        walk(&decoded.packet);
        let again = encode_vec(&decoded.packet, v);
        match decode(&again, v, MAX) {
            Ok(Status::Complete(d)) => assert_eq!(d.packet, decoded.packet),
            other => panic!("re-encoded packet does not decode: {other:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_is_identity((v, packet) in any_packet()) {
        let bytes = encode_vec(&packet, v);
        match decode(&bytes, v, MAX) {
            Ok(Status::Complete(d)) => {
                prop_assert_eq!(d.len, bytes.len());
                prop_assert_eq!(d.packet, packet);
                // The decoded packet re-encodes byte for byte.
                prop_assert_eq!(encode_vec(&d.packet, v), bytes);
            }
            other => prop_assert!(false, "decode gave {:?}", other),
        }
    }

    #[test]
    fn split_anywhere_is_incomplete_then_the_same_packet((v, packet) in any_packet()) {
        let bytes = encode_vec(&packet, v);
        for split in 0..bytes.len() {
            match decode(&bytes[..split], v, MAX) {
                Ok(Status::Incomplete(needed)) => prop_assert!(split + needed.get() <= bytes.len()),
                other => prop_assert!(false, "prefix of {} bytes gave {:?}", split, other),
            }
        }
        let Ok(Status::Complete(d)) = decode(&bytes, v, MAX) else { panic!() };
        prop_assert_eq!(d.packet, packet);
    }

    #[test]
    fn two_packets_back_to_back((v, a) in any_packet(), (_, b) in any_packet()) {
        // Both generated for their own version; encode both with `v` where valid.
        let b = match b { Packet::Auth(_) if !v.is_v5() => Packet::PingReq, other => other };
        let (Ok(_), Ok(_)) = (a.encoded_len(v), b.encoded_len(v)) else { return Ok(()) };
        let mut stream = encode_vec(&a, v);
        let first = stream.len();
        stream.extend(encode_vec(&b, v));
        let Ok(Status::Complete(d)) = decode(&stream, v, MAX) else { panic!() };
        prop_assert_eq!(d.len, first);
        let Ok(Status::Complete(_)) = decode(&stream[first..], v, MAX) else { panic!() };
    }

    #[test]
    fn prepared_encode_is_checked_encode_and_decodes_back((v, publish) in valid_publish(), id in packet_id(), dup in flag(), retain in flag()) {
        let bytes = prepared_bytes(&publish, v).expect("valid publish prepares");
        let Ok(Status::Complete(d)) = decode(&bytes, v, MAX) else { panic!() };
        prop_assert_eq!(d.packet, Packet::Publish(publish));
        // Prepared from the decoded packet (5.0 properties as wire bytes): the same bytes.
        let Packet::Publish(received) = d.packet else { unreachable!() };
        prop_assert_eq!(prepared_bytes(&received, v), Ok(bytes.clone()));
        // A new packet identifier, DUP and RETAIN: what the checked encoder writes for the
        // packet with those fields.
        let mut prepared = publish.prepare(v).unwrap();
        let changed = if publish.qos == QoS::AtMostOnce {
            prop_assert!(prepared.set_packet_id(std::num::NonZeroU16::new(id).unwrap()).is_err());
            prop_assert_eq!(prepared.set_dup(dup).is_ok(), !dup);
            prepared.set_retain(retain);
            Publish { retain, ..publish }
        } else {
            prepared.set_packet_id(std::num::NonZeroU16::new(id).unwrap()).unwrap();
            prepared.set_dup(dup).unwrap();
            prepared.set_retain(retain);
            Publish { packet_id: Some(id), dup, retain, ..publish }
        };
        prop_assert_eq!(prepared.publish(), changed);
        let mut out = vec![0u8; prepared.encoded_len()];
        prepared.encode(&mut out).unwrap();
        prop_assert_eq!(Ok(out), prepared_bytes(&changed, v));
    }

    #[test]
    fn prepare_refuses_exactly_what_the_decoder_refuses((v, publish) in any_publish()) {
        // Written without checks, the packet either decodes to itself (properties are not
        // written before 5.0), or it does not; `prepare` must agree, and write those bytes.
        let unchecked = unchecked_publish(&publish, v);
        let expected = Publish {
            properties: if v.is_v5() { publish.properties } else { Properties::EMPTY },
            ..publish
        };
        let decodes_back = matches!(
            decode(&unchecked, v, MAX),
            Ok(Status::Complete(d)) if d.len == unchecked.len() && d.packet == Packet::Publish(expected)
        );
        match prepared_bytes(&publish, v) {
            Ok(bytes) => {
                prop_assert!(decodes_back, "prepared {:?} for {}, the decoder refuses it", publish, v);
                prop_assert_eq!(bytes, unchecked);
            }
            Err(e) => prop_assert!(!decodes_back, "refused {:?} for {} with {}", publish, v, e),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..256), v in version()) {
        check_arbitrary(&bytes, v);
    }

    #[test]
    fn mutated_packets_never_panic((v, packet) in any_packet(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = encode_vec(&packet, v);
        let i = at.index(bytes.len());
        bytes[i] = byte;
        check_arbitrary(&bytes, v);
        // Truncations and extensions of a valid packet too.
        check_arbitrary(&bytes[..i], v);
    }
}
