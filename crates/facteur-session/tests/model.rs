//! Model-based test: a client and a server session publish to each other over a link that
//! loses the connection (and every packet in transit) at random and reconnects, while either
//! side gives back the memory of its empty containers at random. Checked at the end, in both
//! directions: QoS 0 at most once, QoS 1 at least once, QoS 2 exactly once, every QoS 1/2
//! message acknowledged exactly once, and per topic the QoS 1/2 messages first delivered in
//! the order published.

mod common;

use std::collections::{HashMap, VecDeque};

use common::*;
use facteur_codec::{ProtocolVersion, QoS, ReasonCode};
use facteur_session::{
    AllocStore, Config, Connection, Event, HeaplessStore, Instant, Role, Session, Store,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// One side publishes on topic `t/{topic}`.
    Publish {
        from_client: bool,
        topic: u8,
        qos: u8,
    },
    /// Up to `n` packets in transit arrive at the other side.
    Deliver { to_server: bool, n: usize },
    /// The connection drops with everything in transit, and comes back.
    Cut,
    /// One side gives back the memory of its empty containers (which must change nothing).
    Release { client: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<bool>(), 0u8..3, 0u8..3)
            .prop_map(|(from_client, topic, qos)| Op::Publish { from_client, topic, qos }),
        5 => (any::<bool>(), 1usize..5).prop_map(|(to_server, n)| Op::Deliver { to_server, n }),
        1 => Just(Op::Cut),
        1 => any::<bool>().prop_map(|client| Op::Release { client }),
    ]
}

/// What one side published: (topic, qos) by sequence number.
struct Side<S: Store> {
    session: Session<S>,
    connection: Connection,
    /// Frames written and not yet arrived at the other side.
    in_transit: VecDeque<Vec<u8>>,
    published: Vec<(u8, QoS)>,
    /// (sequence number, topic, qos) of the other side's messages, as delivered.
    delivered: Vec<(u16, u8, QoS)>,
    acknowledged: HashMap<u32, usize>,
}

impl<S: Store> Side<S> {
    fn new(role: Role, version: ProtocolVersion) -> Self {
        let mut config = Config::new(role);
        config.receive_maximum = 5;
        config.topic_alias_maximum = 2;
        let mut connection = Connection::new(version, 0);
        connection.peer_receive_maximum = 5;
        connection.peer_topic_alias_maximum = 2;
        let mut session = Session::new(config);
        session.on_connect(at(0), connection);
        Self {
            session,
            connection,
            in_transit: VecDeque::new(),
            published: Vec::new(),
            delivered: Vec::new(),
            acknowledged: HashMap::new(),
        }
    }

    /// Writes everything the session has to send onto the link, and takes its events.
    fn flush(&mut self, now: Instant) {
        self.in_transit.extend(drain(&mut self.session, now));
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Acknowledged {
                    message,
                    reason,
                    qos,
                    ..
                } => {
                    // 0x92: the PUBCOMP answering a PUBREL resent after its first PUBCOMP
                    // was lost with the connection.
                    assert!(
                        reason == ReasonCode::Success
                            || (qos == QoS::ExactlyOnce
                                && reason == ReasonCode::PacketIdentifierNotFound),
                        "{reason:?}"
                    );
                    *self.acknowledged.entry(message.get()).or_default() += 1;
                }
                other => panic!("unexpected event {other:?}"),
            }
        }
    }
}

fn deliver<S: Store>(
    from: &mut Side<S>,
    to: &mut Side<S>,
    n: usize,
    version: ProtocolVersion,
    now: Instant,
) {
    for _ in 0..n {
        let Some(frame) = from.in_transit.pop_front() else {
            break;
        };
        if let Some(got) = feed(&mut to.session, &frame, version, now) {
            let seq = u16::from_be_bytes([got.payload[0], got.payload[1]]);
            let topic = got.topic.strip_prefix("t/").unwrap().parse().unwrap();
            to.delivered.push((seq, topic, got.qos));
        }
    }
    to.flush(now);
}

fn cut<S: Store>(client: &mut Side<S>, server: &mut Side<S>, now: Instant) {
    for side in [&mut *client, &mut *server] {
        side.in_transit.clear();
        side.session.on_connection_lost(now);
        side.session.on_connect(now, side.connection);
    }
    client.flush(now);
    server.flush(now);
}

fn run<S: Store>(version: ProtocolVersion, ops: &[Op]) {
    let mut client = Side::<S>::new(Role::Client, version);
    let mut server = Side::<S>::new(Role::Server, version);
    let mut now = 0;
    for op in ops {
        now += 10;
        let t = at(now);
        match *op {
            Op::Publish {
                from_client,
                topic,
                qos,
            } => {
                let side = if from_client {
                    &mut client
                } else {
                    &mut server
                };
                let qos = QoS::from_u8(qos).unwrap();
                let seq = side.published.len() as u16;
                let payload: &'static [u8] = Box::leak(Box::new(seq.to_be_bytes()));
                side.session
                    .publish(&message(&format!("t/{topic}"), payload, qos), t)
                    .unwrap();
                side.published.push((topic, qos));
                side.flush(t);
            }
            Op::Deliver { to_server: true, n } => deliver(&mut client, &mut server, n, version, t),
            Op::Deliver {
                to_server: false,
                n,
            } => deliver(&mut server, &mut client, n, version, t),
            Op::Cut => cut(&mut client, &mut server, t),
            Op::Release { client: true } => client.session.release_idle_memory(),
            Op::Release { client: false } => server.session.release_idle_memory(),
        }
    }
    // A last, clean connection: everything completes.
    now += 10;
    cut(&mut client, &mut server, at(now));
    while !client.in_transit.is_empty() || !server.in_transit.is_empty() {
        deliver(&mut client, &mut server, usize::MAX, version, at(now));
        deliver(&mut server, &mut client, usize::MAX, version, at(now));
    }
    for (sender, receiver) in [(&client, &server), (&server, &client)] {
        check(sender, receiver);
    }
}

fn check<S: Store>(sender: &Side<S>, receiver: &Side<S>) {
    assert_eq!(sender.session.inflight(), 0);
    assert_eq!(sender.session.queued(), 0);
    assert_eq!(receiver.session.received(), 0);
    let mut count = vec![0usize; sender.published.len()];
    let mut last_first: HashMap<u8, u16> = HashMap::new();
    for &(seq, topic, qos) in &receiver.delivered {
        let (t, q) = sender.published[usize::from(seq)];
        assert_eq!((t, q), (topic, qos), "message {seq} delivered as sent");
        count[usize::from(seq)] += 1;
        if qos != QoS::AtMostOnce && count[usize::from(seq)] == 1 {
            if let Some(&before) = last_first.get(&topic) {
                assert!(
                    before < seq,
                    "topic {topic}: {seq} first delivered after {before}"
                );
            }
            last_first.insert(topic, seq);
        }
    }
    for (seq, &(_, qos)) in sender.published.iter().enumerate() {
        // Message handles count from 0 in publish order, like the sequence numbers.
        let message = seq as u32;
        let n = count[seq];
        match qos {
            QoS::AtMostOnce => assert!(n <= 1, "QoS 0 message {seq} delivered {n} times"),
            QoS::AtLeastOnce => assert!(n >= 1, "QoS 1 message {seq} never delivered"),
            QoS::ExactlyOnce => assert_eq!(n, 1, "QoS 2 message {seq} delivered {n} times"),
        }
        let acks = sender.acknowledged.get(&message).copied().unwrap_or(0);
        let expected = usize::from(qos != QoS::AtMostOnce);
        assert_eq!(acks, expected, "message {seq} acknowledged {acks} times");
    }
}

type Fixed = HeaplessStore<5, 64, 32, 2>;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn lossy_link_v3_heapless(ops in prop::collection::vec(op(), 0..120)) {
        run::<Fixed>(V3, &ops);
    }

    #[test]
    fn lossy_link_v5_heapless(ops in prop::collection::vec(op(), 0..120)) {
        run::<Fixed>(V5, &ops);
    }

    #[test]
    fn lossy_link_v5_alloc(ops in prop::collection::vec(op(), 0..120)) {
        run::<AllocStore>(V5, &ops);
    }
}
