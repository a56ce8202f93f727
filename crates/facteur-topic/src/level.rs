//! Topic levels as trie keys, stored inline when short.

use alloc::boxed::Box;
use core::borrow::Borrow;
use core::cmp::Ordering;
use core::fmt;

/// Levels up to this many bytes are stored inside the key, without an allocation of their own.
const INLINE: usize = 22;

/// One topic level used as a key: up to [`INLINE`] bytes inline (most levels: `site`, `42`,
/// `temperature`), longer ones boxed. Keys compare as bytes, which for UTF-8 is the `str` order;
/// lookups borrow them as `[u8]` so that no comparison follows a pointer for short levels.
#[derive(Clone)]
pub(crate) enum Level {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Level {
    pub(crate) fn new(level: &str) -> Self {
        if level.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..level.len()].copy_from_slice(level.as_bytes());
            Self::Inline {
                // At most INLINE, which fits a u8.
                len: level.len() as u8,
                bytes,
            }
        } else {
            Self::Heap(level.into())
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Heap(s) => s.as_bytes(),
        }
    }

    /// Bytes allocated apart from the key itself.
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Self::Inline { .. } => 0,
            Self::Heap(s) => s.len(),
        }
    }

    /// True for a level starting with `$`.
    pub(crate) fn is_dollar(&self) -> bool {
        self.as_bytes().first() == Some(&b'$')
    }
}

impl PartialEq for Level {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Level {}

impl PartialOrd for Level {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Level {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Borrow<[u8]> for Level {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&alloc::string::String::from_utf8_lossy(self.as_bytes()), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_heap_levels_order_as_strings() {
        assert_eq!(core::mem::size_of::<Level>(), 24);
        let long = "a-level-longer-than-twenty-two-bytes";
        let levels = [
            "",
            "$SYS",
            "a",
            "ab",
            "b",
            long,
            "a-level-longer-than-tw",
            "é",
        ];
        for x in levels {
            let lx = Level::new(x);
            assert_eq!(lx.as_bytes(), x.as_bytes());
            assert_eq!(lx.heap_bytes(), if x.len() > INLINE { x.len() } else { 0 });
            assert_eq!(lx.is_dollar(), x.starts_with('$'));
            for y in levels {
                assert_eq!(lx.cmp(&Level::new(y)), x.cmp(y), "{x} {y}");
            }
        }
        assert_eq!(alloc::format!("{:?}", Level::new("a")), "\"a\"");
    }
}
