#![no_main]
//! facteur-embedded's blocking client fed a fuzzed broker: connect, subscribe, publish at
//! QoS 1 and 2, then poll until the stream ends, over whatever bytes the "broker" sends.
//!
//! Input: a head byte, then the broker's bytes. Head bit 0: MQTT 5.0 (else 3.1.1); bits 1-2:
//! the bytes arrive all at once or in reads of 1, 7 or 64 bytes; bit 3: a valid CONNACK comes
//! first (so that the session's flows are reached, not only the handshake); bits 4-7: the
//! clock's step per read, in 500 ms units (keep alive 5 s: PINGREQ and timeouts are reached).
//!
//! Checked: nothing panics; every poll consumes input or ends the connection, so the loop
//! ends with an error (the stream ends with `Closed` at the latest) within a bound; after it,
//! the client says it is not connected.

use std::cell::Cell;
use std::rc::Rc;

use facteur_embedded::blocking::Client;
use facteur_embedded::{ConnectOptions, HeaplessStore, ProtocolVersion, QoS, Subscription};
use libfuzzer_sys::fuzz_target;

struct Broker<'a> {
    input: &'a [u8],
    chunk: usize,
    clock: Rc<Cell<u64>>,
    step: u64,
}

impl embedded_io::ErrorType for Broker<'_> {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io::Read for Broker<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.clock.set(self.clock.get() + self.step);
        let n = buf.len().min(self.chunk).min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n) // 0 once the input is used up: the stream ends
    }
}

impl embedded_io::Write for Broker<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, body)) = data.split_first() else {
        return;
    };
    let v5 = head & 1 != 0;
    let version = if v5 {
        ProtocolVersion::V5
    } else {
        ProtocolVersion::V3_1_1
    };
    let chunk = [usize::MAX, 1, 7, 64][usize::from(head >> 1 & 3)];
    let mut input = Vec::with_capacity(body.len() + 5);
    if head & 8 != 0 {
        input.extend_from_slice(if v5 {
            &[0x20, 0x03, 0x00, 0x00, 0x00][..]
        } else {
            &[0x20, 0x02, 0x00, 0x00]
        });
    }
    input.extend_from_slice(body);
    let clock = Rc::new(Cell::new(0u64));
    let broker = Broker {
        input: &input,
        chunk,
        clock: clock.clone(),
        step: u64::from(head >> 4) * 500,
    };
    let (mut rx, mut tx) = ([0u8; 256], [0u8; 256]);
    let mut options = ConnectOptions::new(version, "fuzz");
    options.keep_alive = 5;
    options.session_expiry = 60;
    let now = clock.clone();
    let mut client: Client<'_, Broker<'_>, _, HeaplessStore<2, 2, 64>> =
        Client::new(options, move || now.get(), &mut rx, &mut tx);
    if client.connect(broker).is_err() {
        assert!(!client.is_connected());
        return;
    }
    let _ = client.subscribe(&[Subscription::new("a/#", QoS::ExactlyOnce)]);
    let _ = client.publish("a/b", b"1", QoS::AtLeastOnce, false);
    let _ = client.publish("a/b", b"2", QoS::ExactlyOnce, false);
    for _ in 0..input.len() + 64 {
        if let Err(e) = client.poll() {
            assert!(e.is_fatal(), "{e:?}");
            assert!(!client.is_connected());
            return;
        }
    }
    panic!("the client did not end with the stream");
});
