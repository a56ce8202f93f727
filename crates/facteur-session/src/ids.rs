//! Packet identifiers.

/// Hands out packet identifiers for outgoing QoS 1 and 2 PUBLISH packets.
///
/// Identifiers run 1, 2, ..., 65535 and wrap to 1 (0 is not a valid identifier). An
/// identifier still in flight is never handed out again: the caller says which are in use.
///
/// ```
/// use facteur_session::PacketIds;
/// let mut ids = PacketIds::new();
/// assert_eq!(ids.allocate(|_| false), Some(1));
/// // 2 is still in flight, so it is skipped.
/// assert_eq!(ids.allocate(|id| id == 2), Some(3));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketIds {
    next: u16,
}

impl Default for PacketIds {
    fn default() -> Self {
        Self::new()
    }
}

impl PacketIds {
    /// An allocator whose first identifier is 1.
    pub const fn new() -> Self {
        Self { next: 1 }
    }

    /// An allocator whose first candidate is `next` (0 is taken as 1).
    pub const fn starting_at(next: u16) -> Self {
        Self {
            next: if next == 0 { 1 } else { next },
        }
    }

    /// The next identifier for which `in_use` is false, searching forward from the one after
    /// the last handed out and wrapping from 65535 to 1; `None` if all 65535 are in use.
    pub fn allocate(&mut self, mut in_use: impl FnMut(u16) -> bool) -> Option<u16> {
        for _ in 0..u16::MAX {
            let id = self.next;
            self.next = if id == u16::MAX { 1 } else { id + 1 };
            if !in_use(id) {
                return Some(id);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_from_65535_to_1_and_never_yields_0() {
        let mut ids = PacketIds::starting_at(65534);
        assert_eq!(ids.allocate(|_| false), Some(65534));
        assert_eq!(ids.allocate(|_| false), Some(65535));
        assert_eq!(ids.allocate(|_| false), Some(1));
        assert_eq!(PacketIds::starting_at(0).allocate(|_| false), Some(1));
    }

    #[test]
    fn skips_ids_in_flight_across_the_wrap() {
        let mut ids = PacketIds::starting_at(65535);
        let in_flight = [65535, 1, 2];
        assert_eq!(ids.allocate(|id| in_flight.contains(&id)), Some(3));
    }

    #[test]
    fn none_when_every_id_is_in_flight() {
        let mut ids = PacketIds::new();
        assert_eq!(ids.allocate(|_| true), None);
        assert_eq!(ids.allocate(|id| id != 40000), Some(40000));
    }

    #[test]
    fn full_cycle_hands_out_each_id_once() {
        let mut ids = PacketIds::new();
        let mut seen = [false; 65536];
        for _ in 0..65535 {
            let id = ids.allocate(|_| false).unwrap();
            assert!(!seen[usize::from(id)]);
            seen[usize::from(id)] = true;
        }
        assert!(!seen[0]);
        assert_eq!(ids.allocate(|_| false), Some(1));
    }
}
