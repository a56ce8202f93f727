//! Arbitrary broker bytes fed to the client (after a valid CONNACK or instead of one), cut
//! into arbitrary reads, with the clock jumping: errors only, never a panic or a hang.

mod common;

use common::{ManualClock, Scripted};
use facteur_codec::{Encode, Packet, ProtocolVersion, PubResponse, Publish, QoS, SubAck};
use facteur_embedded::blocking::Client;
use facteur_embedded::{ConnectOptions, Error, HeaplessStore, ReasonCode, Subscription};
use proptest::prelude::*;

/// A chunk of input: random bytes, or a well-formed packet a broker might send, with
/// random identifiers, so that the session's flows are reached, not only the decoder.
fn chunk(version: ProtocolVersion) -> impl Strategy<Value = Vec<u8>> {
    let packet = (0u8..7, 1u16..6, 0u8..3, any::<bool>()).prop_map(move |(kind, id, qos, dup)| {
        let r = PubResponse::new(id);
        let qos = QoS::from_u8(qos).unwrap_or(QoS::AtMostOnce);
        let codes = [ReasonCode::GrantedQoS1];
        let packet = match kind {
            0 => Packet::Publish(Publish {
                qos,
                dup: dup && qos != QoS::AtMostOnce,
                packet_id: (qos != QoS::AtMostOnce).then_some(id),
                ..Publish::new("a/b", b"payload")
            }),
            1 => Packet::PubAck(r),
            2 => Packet::PubRec(r),
            3 => Packet::PubRel(r),
            4 => Packet::PubComp(r),
            5 => Packet::SubAck(SubAck::new(id, &codes)),
            _ => Packet::PingResp,
        };
        let mut out = vec![0u8; packet.encoded_len(version).unwrap()];
        packet.encode(version, &mut out).unwrap();
        out
    });
    prop_oneof![
        2 => packet,
        1 => proptest::collection::vec(any::<u8>(), 0..48),
    ]
}

fn case() -> impl Strategy<Value = (bool, bool, Vec<Vec<u8>>, Vec<u64>, usize)> {
    any::<bool>().prop_flat_map(|v5| {
        let version = if v5 {
            ProtocolVersion::V5
        } else {
            ProtocolVersion::V3_1_1
        };
        (
            Just(v5),
            any::<bool>(),
            proptest::collection::vec(chunk(version), 0..24),
            proptest::collection::vec(0u64..8_000, 1..24),
            24usize..300,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_broker_bytes_end_in_errors_not_panics(
        (v5, connack_first, chunks, ticks, buffer) in case()
    ) {
        let version = if v5 { ProtocolVersion::V5 } else { ProtocolVersion::V3_1_1 };
        let (mut rx, mut tx) = (vec![0u8; buffer], vec![0u8; buffer]);
        let mut options = ConnectOptions::new(version, "fuzz");
        options.keep_alive = 5;
        options.clean_start = false;
        options.session_expiry = 60;
        let clock = ManualClock::default();
        let mut client: Client<'_, Scripted, ManualClock, HeaplessStore<2, 2, 64>> =
            Client::new(options, clock.clone(), &mut rx, &mut tx);
        let script = Scripted::default();
        if connack_first {
            let connack: &[u8] = if v5 { &[0x20, 0x03, 0x00, 0x00, 0x00] } else { &[0x20, 0x02, 0x00, 0x00] };
            script.push(connack);
        }
        let total: usize = chunks.iter().map(Vec::len).sum();
        for c in &chunks {
            script.push(c);
        }
        script.close();
        if client.connect(script.clone()).is_err() {
            prop_assert!(!client.is_connected());
            return Ok(());
        }
        // Some state of our own: a subscription and messages in flight (refusals are fine).
        let _ = client.subscribe(&[Subscription::new("a/#", QoS::ExactlyOnce)]);
        let _ = client.publish("a/b", b"1", QoS::AtLeastOnce, false);
        let _ = client.publish("a/b", b"2", QoS::ExactlyOnce, false);
        // Each poll consumes at least one byte or one event, or ends: bounded.
        let mut ticks = ticks.iter().cycle();
        let bound = total + 64;
        let mut ended = None;
        for _ in 0..bound {
            clock.advance(*ticks.next().unwrap_or(&0));
            match client.poll() {
                Ok(_) => {}
                Err(e) => {
                    ended = Some(e);
                    break;
                }
            }
        }
        let Some(error) = ended else {
            return Err(TestCaseError::fail(format!("no end after {bound} polls")));
        };
        prop_assert!(error.is_fatal(), "{error:?}");
        prop_assert!(!client.is_connected());
        prop_assert!(matches!(client.poll().map(|_| ()), Err(Error::NotConnected)));
    }
}

/// The same input through the async client, on a polling executor: the async front end's
/// own paths (the read raced against the delay) see the hostile bytes too.
mod asynchronous {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    /// A waker that does nothing (the executor polls in a loop); `Waker::noop` is newer
    /// than the crate's minimum Rust.
    struct Noop;

    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    /// Reads hand out the input in `chunk`s, then the stream ends.
    struct Stream {
        input: Vec<u8>,
        chunk: usize,
    }

    impl embedded_io_async::ErrorType for Stream {
        type Error = embedded_io_async::ErrorKind;
    }

    impl embedded_io_async::Read for Stream {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            let n = buf.len().min(self.chunk).min(self.input.len());
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input.drain(..n);
            Ok(n)
        }
    }

    impl embedded_io_async::Write for Stream {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            Ok(buf.len())
        }

        async fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    /// A delay that is over at once, advancing the test's clock by what it was asked.
    struct Jump(ManualClock);

    impl embedded_hal_async::delay::DelayNs for Jump {
        async fn delay_ns(&mut self, ns: u32) {
            self.0.advance(u64::from(ns / 1_000_000));
        }

        async fn delay_ms(&mut self, ms: u32) {
            self.0.advance(u64::from(ms));
        }
    }

    /// Polls `future` to the end; fails if it is still pending after `polls` polls.
    fn run<F: Future>(future: F, polls: usize) -> Option<F::Output> {
        let mut future = pin!(future);
        let waker = Waker::from(Arc::new(Noop));
        let mut cx = Context::from_waker(&waker);
        for _ in 0..polls {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return Some(output);
            }
        }
        None
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn arbitrary_broker_bytes_end_in_errors_not_panics_async(
            (v5, connack_first, chunks, ticks, buffer) in case()
        ) {
            let version = if v5 { ProtocolVersion::V5 } else { ProtocolVersion::V3_1_1 };
            let mut input = Vec::new();
            if connack_first {
                let connack: &[u8] = if v5 { &[0x20, 0x03, 0x00, 0x00, 0x00] } else { &[0x20, 0x02, 0x00, 0x00] };
                input.extend_from_slice(connack);
            }
            for c in &chunks {
                input.extend_from_slice(c);
            }
            let bound = input.len() + 64;
            let chunk = 1 + ticks[0] as usize % 64;
            let stream = Stream { input, chunk };
            let (mut rx, mut tx) = (vec![0u8; buffer], vec![0u8; buffer]);
            let mut options = ConnectOptions::new(version, "fuzz");
            options.keep_alive = 5;
            options.session_expiry = 60;
            let clock = ManualClock::default();
            let mut client: facteur_embedded::asynch::Client<'_, Stream, ManualClock, Jump, HeaplessStore<2, 2, 64>> =
                facteur_embedded::asynch::Client::new(options, clock.clone(), Jump(clock.clone()), &mut rx, &mut tx);
            let ended = run(async {
                if client.connect(stream).await.is_err() {
                    return None;
                }
                let _ = client.subscribe(&[Subscription::new("a/#", QoS::ExactlyOnce)]).await;
                let _ = client.publish("a/b", b"1", QoS::AtLeastOnce, false).await;
                for tick in ticks.iter().cycle().take(bound) {
                    clock.advance(*tick);
                    if let Err(e) = client.poll().await {
                        return Some(e);
                    }
                }
                panic!("no end after {bound} polls");
            }, 1_000_000);
            let Some(ended) = ended else {
                return Err(TestCaseError::fail("the client hung"));
            };
            if let Some(error) = ended {
                prop_assert!(error.is_fatal(), "{error:?}");
            }
            prop_assert!(!client.is_connected());
        }
    }
}
