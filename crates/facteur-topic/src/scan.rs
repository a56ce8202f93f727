//! Finding forbidden bytes in a topic eight bytes at a time (SWAR), the hot part of validating
//! every PUBLISH topic.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Non-zero if some byte of `word` is zero (exact as a yes/no answer).
#[inline]
const fn has_zero_byte(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & HIGHS
}

/// Non-zero if some byte of `word` is below `n` (exact as a yes/no answer for `n <= 128`).
#[inline]
const fn has_byte_below(word: u64, n: u8) -> u64 {
    word.wrapping_sub(ONES * n as u64) & !word & HIGHS
}

/// The index of the first byte of `bytes` equal to `a`, `b` or `c`.
///
/// Used by facteur-codec too, so that every MQTT string is checked by one routine.
#[doc(hidden)]
#[inline]
pub fn find_any_of3(bytes: &[u8], a: u8, b: u8, c: u8) -> Option<usize> {
    let (wa, wb, wc) = (ONES * a as u64, ONES * b as u64, ONES * c as u64);
    // Words with no byte as low as the highest needle cannot hold one: one test per word in
    // the common case (topic text is mostly letters, digits, `/`, `-` and `_`).
    let ceiling = a.max(b).max(c).saturating_add(1);
    let quick = ceiling <= 128;
    let hit = |chunk: &[u8]| {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        if quick && has_byte_below(word, ceiling) == 0 {
            return false;
        }
        has_zero_byte(word ^ wa) | has_zero_byte(word ^ wb) | has_zero_byte(word ^ wc) != 0
    };
    let scalar = |from: usize| {
        bytes[from..]
            .iter()
            .position(|&x| x == a || x == b || x == c)
            .map(|i| from + i)
    };
    let mut start = 0;
    for chunk in bytes.chunks_exact(8) {
        if hit(chunk) {
            return scalar(start);
        }
        start += 8;
    }
    // The tail: one more word, overlapping bytes already seen, instead of a byte loop.
    if start < bytes.len() && bytes.len() >= 8 {
        let last = bytes.len() - 8;
        return if hit(&bytes[last..]) {
            scalar(start)
        } else {
            None
        };
    }
    scalar(start)
}

/// The high bit of each byte of `word` that equals `byte` (exact, unlike [`has_zero_byte`]).
#[inline(always)]
const fn bytes_equal(word: u64, byte: u8) -> u64 {
    const LOWS: u64 = !HIGHS;
    let x = word ^ (ONES * byte as u64);
    !(((x & LOWS) + LOWS) | x) & HIGHS
}

/// True if `bytes` (not empty, at most 65,535 long) is a valid topic filter: no U+0000,
/// `+` and `#` only as whole levels, `#` only last. Eight bytes at a time: a wildcard must have
/// a `/` (or the start) before it and a `/` (or the end) after it, and nothing may follow a
/// `#`; each word's masks are shifted one byte along, carrying the last byte's into the next
/// word. Only says yes or no: the error comes from the rules walked byte by byte.
#[inline]
pub(crate) fn is_valid_filter(bytes: &[u8]) -> bool {
    const SLASHES: u64 = ONES * b'/' as u64;
    let len = bytes.len();
    // The high bit of byte 7 of the previous word, moved to byte 0 of this one. The start of
    // the filter counts as a `/` before it.
    let (mut slash_before, mut wildcard_before, mut hash_before) = (0x80u64, 0u64, 0u64);
    let mut bad = 0u64;
    let mut at = 0;
    while at < len {
        let (word, present) = if len - at >= 8 {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            (u64::from_le_bytes(word), HIGHS)
        } else {
            // The last 1 to 7 bytes, padded with `/` (which no rule objects to); `present`
            // marks the filter's own bytes. Read as the last eight bytes when there are
            // eight, shifted down: no copy of a short slice.
            let rest = len - at;
            let word = if len >= 8 {
                let mut word = [0u8; 8];
                word.copy_from_slice(&bytes[len - 8..]);
                u64::from_le_bytes(word) >> (8 * (8 - rest))
            } else {
                bytes
                    .iter()
                    .rev()
                    .fold(0u64, |word, &b| word << 8 | u64::from(b))
            };
            let present = HIGHS >> (8 * (8 - rest));
            (word | SLASHES << (8 * rest), present)
        };
        // Most words hold no byte below `,` (no U+0000, `+` or `#`; `/` is above it): unless
        // the word before ended with a wildcard, only whether this one ends with `/` matters.
        if has_byte_below(word, b',') == 0 && wildcard_before == 0 {
            slash_before = u64::from(word >> 56 == u64::from(b'/')) << 7;
            at += 8;
            continue;
        }
        let slash = bytes_equal(word, b'/');
        let plus = bytes_equal(word, b'+');
        let hash = bytes_equal(word, b'#');
        let wildcard = plus | hash;
        bad |= bytes_equal(word, 0) & present
            // A wildcard not after a `/`.
            | wildcard & !(slash << 8 | slash_before)
            // A byte after a wildcard that is not a `/`, or any byte after a `#`.
            | (wildcard << 8 | wildcard_before) & !slash & present
            | (hash << 8 | hash_before) & present;
        slash_before = slash >> 56;
        wildcard_before = wildcard >> 56;
        hash_before = hash >> 56;
        at += 8;
    }
    bad == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_match_at_every_position() {
        for len in 0..40 {
            for at in 0..len {
                for needle in [0u8, b'+', b'#'] {
                    let mut bytes = std::vec![b'a'; len];
                    bytes[at] = needle;
                    if at + 3 < len {
                        bytes[at + 3] = b'#';
                    }
                    assert_eq!(find_any_of3(&bytes, 0, b'+', b'#'), Some(at), "{len} {at}");
                }
            }
            assert_eq!(find_any_of3(&std::vec![0x80u8; len], 0, b'+', b'#'), None);
            // Low bytes that are not needles ('$', ' ', '!') must not be taken for one.
            let low: std::vec::Vec<u8> =
                (0..len).map(|i| [b'$', b' ', b'!', b'/'][i % 4]).collect();
            assert_eq!(find_any_of3(&low, 0, b'+', b'#'), None);
        }
    }
}
