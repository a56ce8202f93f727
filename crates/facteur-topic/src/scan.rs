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

/// True if `bytes` (not empty, at most 65,535 long) is a valid topic filter: no U+0000,
/// `+` and `#` only as whole levels, `#` only last. Only says yes or no: the error comes from
/// the rules walked byte by byte.
///
/// Eight bytes at a time. A word with no byte below `,` (most: `/`, letters and digits are
/// above it; U+0000, `+` and `#` below) is one test. Another is checked with masks, without
/// a branch per byte: every `+` or `#` must have a `/` (or the start) before it and a `/` (or
/// the end) after it, a `#` must be the last byte, and no byte may be U+0000. Only the `/`
/// mask must be exact: [`has_zero_byte`] marks too much only right above a byte it rightly
/// marks, a `*` after a `+` or a `"` after a `#`, where the filter is invalid anyway.
#[inline(never)]
pub(crate) fn is_valid_filter(bytes: &[u8]) -> bool {
    filter_is_valid(bytes)
}

/// True if every filter is valid and none starts with `$` (a `$share/` filter has rules of
/// its own): many filters checked in one loop, with no call per filter. When it says no,
/// [`TopicFilter::new`](crate::TopicFilter::new) on each tells which and why (it also takes
/// the valid filters that start with `$`).
///
/// Used by facteur-codec to check a SUBSCRIBE's or UNSUBSCRIBE's filters.
#[doc(hidden)]
#[inline]
pub fn all_plain_filters_valid<'f>(filters: impl IntoIterator<Item = &'f str>) -> bool {
    filters.into_iter().all(|filter| {
        let bytes = filter.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= crate::MAX_TOPIC_LEN
            && bytes[0] != b'$'
            && filter_is_valid(bytes)
    })
}

/// [`is_valid_filter`]'s body, to be inlined into loops over many filters.
#[inline(always)]
fn filter_is_valid(bytes: &[u8]) -> bool {
    let len = bytes.len();
    if len < 8 {
        return (0..len).all(|at| bytes[at] >= b',' || low_byte_is_fine(bytes, at));
    }
    let mut bad = 0;
    let mut at = 0;
    while at < len {
        // The last word overlaps the one before when the length is not a multiple of eight:
        // its first bytes are looked at twice, with the same answer.
        let start = at.min(len - 8);
        at += 8;
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[start..start + 8]);
        let word = u64::from_le_bytes(word);
        if has_byte_below(word, b',') == 0 {
            continue;
        }
        let end = start + 8;
        let slash = bytes_equal(word, b'/');
        // The byte before the word and the one after it, as bit 7 of byte -1 and byte 8.
        let slash_before = u64::from(start == 0 || bytes[start - 1] == b'/') << 7;
        let slash_after = u64::from(end == len || bytes[end] == b'/') << 63;
        let last = if end == len { 0x80 << 56 } else { 0 };
        let plus = has_zero_byte(word ^ (ONES * u64::from(b'+')));
        let hash = has_zero_byte(word ^ (ONES * u64::from(b'#')));
        let whole_level = (slash << 8 | slash_before) & (slash >> 8 | slash_after);
        bad |= has_zero_byte(word) | (plus | hash) & !whole_level | hash & !last;
    }
    bad == 0
}

/// The high bit of each byte of `word` that equals `byte` (exact, unlike [`has_zero_byte`]).
#[inline(always)]
const fn bytes_equal(word: u64, byte: u8) -> u64 {
    const LOWS: u64 = !HIGHS;
    let x = word ^ (ONES * byte as u64);
    !(((x & LOWS) + LOWS) | x) & HIGHS
}

/// True if `bytes` (not empty, at most 65,535 long) holds no U+0000, `+` or `#`: a valid
/// topic name. Eight bytes at a time, as [`is_valid_filter`]: only the bytes below `,` are
/// looked at one by one.
#[inline(never)]
pub(crate) fn is_valid_name(bytes: &[u8]) -> bool {
    let len = bytes.len();
    let fine = |b: u8| !matches!(b, 0 | b'+' | b'#');
    if len < 8 {
        return bytes.iter().all(|&b| fine(b));
    }
    let mut at = 0;
    while at < len {
        // The last word overlaps the one before when the length is not a multiple of eight.
        let start = at.min(len - 8);
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[start..start + 8]);
        let mut marked = has_byte_below(u64::from_le_bytes(word), b',');
        while marked != 0 {
            if !fine(word[marked.trailing_zeros() as usize / 8]) {
                return false;
            }
            marked &= marked - 1;
        }
        at += 8;
    }
    true
}

/// The byte at `at`, below `,`, where it stands: U+0000 never; `+` a whole level; `#` a whole
/// level and the last; any other byte anywhere.
#[inline(always)]
fn low_byte_is_fine(bytes: &[u8], at: usize) -> bool {
    let before = at == 0 || bytes[at - 1] == b'/';
    match bytes[at] {
        0 => false,
        b'+' => before && (at + 1 == bytes.len() || bytes[at + 1] == b'/'),
        b'#' => before && at + 1 == bytes.len(),
        _ => true,
    }
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
