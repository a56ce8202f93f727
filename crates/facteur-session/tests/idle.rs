//! `Session::release_idle_memory` changes nothing a session does: the same exchange (QoS 0,
//! 1 and 2 both ways, topic aliases, a lost connection with messages in flight, deferred
//! acknowledgements, the will, a keep alive timeout with its DISCONNECT) gives the same
//! packets, deliveries and events whether or not both sides give their memory back at every
//! step.

mod common;

use common::*;
use facteur_codec::{Properties, Property, QoS, ReasonCode, Will};
use facteur_session::{AllocStore, Config, Connection, Event, Role, Session, Verdict};

struct Run {
    client: Session<AllocStore>,
    server: Session<AllocStore>,
    release: bool,
    /// Everything observable, in order.
    transcript: Vec<String>,
}

impl Run {
    fn new(release: bool) -> Self {
        let connection = connection();
        let mut config = Config::new(Role::Client);
        config.topic_alias_maximum = 2;
        let mut client = Session::new(config);
        config.role = Role::Server;
        let mut server = Session::new(config);
        client.on_connect(at(0), connection);
        server.on_connect(at(0), connection);
        let mut run = Self {
            client,
            server,
            release,
            transcript: Vec::new(),
        };
        run.idle();
        run
    }

    /// Both sides give back what they can, if this run does.
    fn idle(&mut self) {
        if self.release {
            self.client.release_idle_memory();
            self.server.release_idle_memory();
        }
    }

    fn publish(&mut self, from_client: bool, topic: &str, qos: QoS, now: u64) {
        let side = if from_client {
            &mut self.client
        } else {
            &mut self.server
        };
        let id = side.publish(&message(topic, b"payload", qos), at(now));
        self.transcript
            .push(format!("publish {topic} {qos:?}: {id:?}"));
        self.idle();
    }

    /// Sends what one side has to send to the other, which answers each delivery with
    /// `verdict` (or defers it); then both sides' events.
    fn flow(&mut self, to_server: bool, verdict: Option<Verdict>, now: u64) -> usize {
        let (from, to) = if to_server {
            (&mut self.client, &mut self.server)
        } else {
            (&mut self.server, &mut self.client)
        };
        let frames = drain(from, at(now));
        for frame in &frames {
            self.transcript.push(format!("{to_server} sends {frame:?}"));
            if let Some(got) = feed(to, frame, V5, at(now)) {
                self.transcript.push(format!("delivered {got:?}"));
                match verdict {
                    Some(verdict) => to.decide(verdict),
                    None => {
                        let token = to.defer();
                        self.transcript
                            .push(format!("deferred: {}", token.is_some()));
                        if let Some(token) = token {
                            to.acknowledge(token, Verdict::Accept);
                        }
                    }
                }
            }
        }
        for (name, side) in [("client", &mut self.client), ("server", &mut self.server)] {
            for event in events(side) {
                self.transcript.push(format!("{name} event {event:?}"));
            }
        }
        self.idle();
        frames.len()
    }

    /// Flows both ways until neither side has anything to send.
    fn settle(&mut self, now: u64) {
        while self.flow(true, Some(Verdict::Accept), now) + self.flow(false, None, now) > 0 {}
        self.transcript.push(format!(
            "settled: client {} {} {}, server {} {} {}",
            self.client.queued(),
            self.client.inflight(),
            self.client.received(),
            self.server.queued(),
            self.server.inflight(),
            self.server.received()
        ));
    }

    fn lose_connection(&mut self, now: u64) {
        self.client.on_connection_lost(at(now));
        self.server.on_connection_lost(at(now));
        self.idle();
        self.client.on_connect(at(now), connection());
        self.server.on_connect(at(now), connection());
        self.idle();
    }
}

fn connection() -> Connection {
    let mut connection = Connection::new(V5, 10);
    connection.peer_topic_alias_maximum = 2;
    connection.peer_receive_maximum = 3;
    connection
}

fn exchange(release: bool) -> Vec<String> {
    let mut run = Run::new(release);
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        run.publish(true, &format!("c/{i}"), qos, 1);
        run.publish(false, &format!("s/{i}"), qos, 1);
        // The same topics again: sent as topic aliases.
        run.publish(true, &format!("c/{i}"), qos, 1);
        run.publish(false, &format!("s/{i}"), qos, 1);
    }
    run.settle(2);

    // More than the Receive Maximum, the first ones refused, then the connection drops
    // before the acknowledgements: everything is resent (DUP, PUBREL) on the next one.
    for i in 0..5 {
        run.publish(true, &format!("c/{i}"), QoS::ExactlyOnce, 3);
        run.publish(false, &format!("s/{i}"), QoS::AtLeastOnce, 3);
    }
    run.flow(true, Some(Verdict::Reject(ReasonCode::QuotaExceeded)), 4);
    run.flow(false, None, 4);
    run.flow(true, Some(Verdict::Accept), 4);
    run.flow(false, None, 4);
    run.lose_connection(5);
    run.settle(6);

    // A client's own packet identifiers, reserved and released around a publish.
    let reserved = run.client.reserve_packet_id();
    run.transcript.push(format!("reserved {reserved:?}"));
    run.idle();
    run.publish(true, "c/r", QoS::AtLeastOnce, 7);
    run.settle(7);
    run.transcript.push(format!(
        "released {}",
        run.client.release_packet_id(reserved.unwrap())
    ));
    run.idle();

    // The will: set, the connection lost without DISCONNECT, due after its delay.
    let props: &'static [Property<'static>] = Box::leak(Box::new([
        Property::WillDelayInterval(2),
        Property::UserProperty("k", "v"),
    ]));
    let will = Will {
        topic: "w/t",
        payload: b"bye",
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Properties::from_slice(props),
    };
    run.server.set_will(&will).unwrap();
    run.server.set_session_expiry(60);
    run.idle();
    run.server.on_connection_lost(at(8_000));
    run.idle();
    run.transcript
        .push(format!("timeout {:?}", run.server.poll_timeout()));
    run.server.handle_timeout(at(10_000));
    run.idle();
    run.transcript
        .push(format!("{:?}", events(&mut run.server)));
    run.transcript.push(format!("{:?}", run.server.will()));
    run.server.clear_will();
    run.idle();

    // Back, then silence: the server's keep alive DISCONNECT (5.0, from the DISCONNECT slot).
    run.server.on_connect(at(11_000), connection());
    run.client.on_connection_lost(at(11_000));
    run.client.on_connect(at(11_000), connection());
    run.idle();
    run.settle(11_000);
    run.server.handle_timeout(at(30_000));
    run.idle();
    run.transcript
        .push(format!("{:?}", events(&mut run.server)));
    run.transcript
        .push(format!("{:?}", drain(&mut run.server, at(30_000))));
    run.idle();
    assert!(!run.server.is_connected());
    run.transcript
}

#[test]
fn releasing_idle_memory_changes_nothing_a_session_does() {
    let kept = exchange(false);
    let released = exchange(true);
    assert_eq!(kept, released);
    // The exchange did what it says.
    let text = kept.join("\n");
    for expected in [
        "client event Acknowledged",
        "server event Acknowledged",
        "deferred: true",
        "reason: QuotaExceeded",
        "[WillDue]",
        "[KeepAliveTimeout]",
    ] {
        assert!(text.contains(expected), "{expected} not in\n{text}");
    }
    assert!(
        kept.iter()
            .any(|line| line.contains("delivered") && line.contains("dup: true")),
        "{text}"
    );
    assert!(kept
        .iter()
        .any(|l| l.starts_with("settled: client 0 0 0, server 0 0 0")));
}

#[test]
fn a_released_session_takes_messages_again() {
    let mut server = session::<AllocStore>(Role::Server, V3);
    let mut client = session::<AllocStore>(Role::Client, V3);
    for round in 0..3u64 {
        server.release_idle_memory();
        client.release_idle_memory();
        let now = at(round);
        let ids: Vec<_> = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
            .into_iter()
            .map(|qos| server.publish(&message("a/b", b"hi", qos), now).unwrap())
            .collect();
        let mut delivered = Vec::new();
        loop {
            let to_client = drain(&mut server, now);
            delivered.extend(feed_all(&mut client, &to_client, V3, now));
            let to_server = drain(&mut client, now);
            feed_all(&mut server, &to_server, V3, now);
            if to_client.is_empty() && to_server.is_empty() {
                break;
            }
        }
        assert_eq!(delivered.len(), 3);
        let acknowledged: Vec<_> = events(&mut server)
            .into_iter()
            .filter_map(|e| match e {
                Event::Acknowledged { message, .. } => Some(message),
                _ => None,
            })
            .collect();
        assert_eq!(acknowledged, ids[1..]);
        assert_eq!(
            (server.queued(), server.inflight(), client.received()),
            (0, 0, 0)
        );
    }
}
