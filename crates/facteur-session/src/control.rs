//! Packet identifiers of a client's SUBSCRIBE and UNSUBSCRIBE packets.
//!
//! MQTT numbers SUBSCRIBE, UNSUBSCRIBE and QoS 1/2 PUBLISH packets from one space: a new
//! one must take an identifier that none of the others awaiting an acknowledgement holds
//! (MQTT-2.2.1-3). The session hands out the PUBLISH ones, so it hands out these too, from
//! the same allocator.

use crate::{Session, Store};

/// How many SUBSCRIBE / UNSUBSCRIBE packets may await their acknowledgement at once
/// ([`Session::reserve_packet_id`]).
pub const CONTROL_IDS: usize = 8;

impl<S: Store> Session<S> {
    /// Client side: a packet identifier for a SUBSCRIBE or UNSUBSCRIBE about to be sent,
    /// from the allocator the outgoing PUBLISH packets use; it is none of theirs in flight
    /// and no other reserved one, and no PUBLISH gets it while it is held. Release it with
    /// [`release_packet_id`](Self::release_packet_id) when the SUBACK or UNSUBACK arrives;
    /// a lost connection releases them all (a SUBSCRIBE is not resent: send it again).
    ///
    /// `None` when [`CONTROL_IDS`] identifiers are already held, or every identifier is
    /// in use.
    ///
    /// ```
    /// use facteur_codec::{ProtocolVersion, Publish, QoS};
    /// use facteur_session::{Config, Connection, HeaplessStore, Instant, Role, Session};
    /// let mut client = Session::<HeaplessStore<4, 4, 64>>::new(Config::new(Role::Client));
    /// let now = Instant::from_millis(0);
    /// client.on_connect(now, Connection::new(ProtocolVersion::V3_1_1, 0));
    /// let subscribe_id = client.reserve_packet_id().unwrap();
    /// assert_eq!(subscribe_id, 1);
    /// // The next QoS 1 PUBLISH takes another identifier.
    /// client.publish(&Publish { qos: QoS::AtLeastOnce, ..Publish::new("t", b"x") }, now)?;
    /// let mut out = [0u8; 16];
    /// let n = client.poll_transmit(now, &mut out)?.unwrap();
    /// assert_eq!(&out[n - 3..n - 1], [0x00, 0x02]);
    /// assert!(client.release_packet_id(subscribe_id));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reserve_packet_id(&mut self) -> Option<u16> {
        if self.control_ids.is_full() {
            return None;
        }
        let (inflight, control) = (&self.inflight, &self.control_ids);
        let id = self
            .ids
            .allocate(|id| inflight.iter().any(|f| f.packet_id == id) || control.contains(&id))?;
        // Cannot fail: there was room.
        let _ = self.control_ids.push(id);
        Some(id)
    }

    /// Gives back an identifier from [`reserve_packet_id`](Self::reserve_packet_id) (its
    /// SUBACK or UNSUBACK arrived); false if it was not held (an acknowledgement for no
    /// packet of ours).
    pub fn release_packet_id(&mut self, id: u16) -> bool {
        match self.control_ids.iter().position(|&held| held == id) {
            Some(i) => {
                self.control_ids.swap_remove(i);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CONTROL_IDS;
    use crate::{Config, Connection, HeaplessStore, Instant, Role, Session};
    use facteur_codec::{decode, Packet, ProtocolVersion, Publish, QoS, Status};

    type Client = Session<HeaplessStore<4, 8, 64>>;

    fn connected() -> Client {
        let mut client = Client::new(Config::new(Role::Client));
        client.on_connect(
            Instant::from_millis(0),
            Connection::new(ProtocolVersion::V3_1_1, 0),
        );
        client
    }

    /// The packet identifiers of the PUBLISH packets the client writes now.
    fn sent_ids(client: &mut Client) -> [Option<u16>; 4] {
        let mut ids = [None; 4];
        let mut out = [0u8; 64];
        let now = Instant::from_millis(0);
        let mut i = 0;
        while let Some(n) = client.poll_transmit(now, &mut out).unwrap() {
            let Status::Complete(d) = decode(&out[..n], ProtocolVersion::V3_1_1, 64).unwrap()
            else {
                panic!("whole packet expected")
            };
            if let Packet::Publish(p) = d.packet {
                ids[i] = p.packet_id;
                i += 1;
            }
        }
        ids
    }

    fn publish_qos1(client: &mut Client) {
        let message = Publish {
            qos: QoS::AtLeastOnce,
            ..Publish::new("t", b"x")
        };
        client.publish(&message, Instant::from_millis(0)).unwrap();
    }

    #[test]
    fn reserved_ids_are_skipped_by_publish_and_publish_ids_by_reserve() {
        let mut client = connected();
        publish_qos1(&mut client);
        assert_eq!(sent_ids(&mut client), [Some(1), None, None, None]);
        // 1 is in flight: the SUBSCRIBE gets 2.
        assert_eq!(client.reserve_packet_id(), Some(2));
        publish_qos1(&mut client);
        publish_qos1(&mut client);
        assert_eq!(sent_ids(&mut client), [Some(3), Some(4), None, None]);
        assert!(client.release_packet_id(2));
        assert!(!client.release_packet_id(2), "released twice");
    }

    #[test]
    fn at_most_control_ids_are_held_and_a_lost_connection_frees_them() {
        let mut client = connected();
        for expected in 1..=CONTROL_IDS as u16 {
            assert_eq!(client.reserve_packet_id(), Some(expected));
        }
        assert_eq!(client.reserve_packet_id(), None);
        client.on_connection_lost(Instant::from_millis(1));
        assert!(!client.release_packet_id(1), "freed by the lost connection");
        assert!(client.reserve_packet_id().is_some());
    }

    #[test]
    fn a_released_id_comes_round_again_after_the_wrap() {
        let mut client = connected();
        let first = client.reserve_packet_id().unwrap();
        assert!(client.release_packet_id(first));
        // Held ids are skipped across the whole cycle, released ones are not.
        let held = client.reserve_packet_id().unwrap();
        for _ in 0..u16::MAX - 2 {
            let id = client.reserve_packet_id().unwrap();
            assert_ne!(id, held);
            assert!(client.release_packet_id(id));
        }
        assert_eq!(client.reserve_packet_id(), Some(first));
    }
}
