//! Short names for stacks and tasks, stored inline.
//!
//! The exception handler reports an overflowed stack by name while the heap may be in any state
//! (the overflow may have happened inside the allocator), so a name is a fixed 32-byte value:
//! copying it never allocates, and the stack registry can hold it in atomics.

use core::fmt;

/// Bytes of text a [`Name`] holds; longer names are truncated at a character boundary.
pub const NAME_CAPACITY: usize = 31;

/// A UTF-8 name of at most [`NAME_CAPACITY`] bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Name {
    len: u8,
    bytes: [u8; NAME_CAPACITY],
}

impl Name {
    /// The empty name.
    pub const EMPTY: Name = Name { len: 0, bytes: [0; NAME_CAPACITY] };

    /// `s`, truncated to [`NAME_CAPACITY`] bytes without splitting a character.
    pub const fn new(s: &str) -> Name {
        let src = s.as_bytes();
        let mut len = if src.len() < NAME_CAPACITY { src.len() } else { NAME_CAPACITY };
        // Back up to a char boundary: continuation bytes look like 0b10xx_xxxx.
        while len < src.len() && len > 0 && (src[len] & 0xC0) == 0x80 {
            len -= 1;
        }
        let mut bytes = [0u8; NAME_CAPACITY];
        let mut i = 0;
        while i < len {
            bytes[i] = src[i];
            i += 1;
        }
        Name { len: len as u8, bytes }
    }

    /// The text. A name rebuilt from words that are not valid UTF-8 (which the registry's
    /// consistency check should make impossible) reads as `"?"` rather than failing.
    pub fn as_str(&self) -> &str {
        let len = usize::from(self.len).min(NAME_CAPACITY);
        core::str::from_utf8(&self.bytes[..len]).unwrap_or("?")
    }

    /// The name as four little-endian words (length in the first byte), for atomic storage.
    pub(crate) fn to_words(self) -> [u64; 4] {
        let mut raw = [0u8; 32];
        raw[0] = self.len;
        raw[1..].copy_from_slice(&self.bytes);
        let mut words = [0u64; 4];
        for (word, chunk) in words.iter_mut().zip(raw.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *word = u64::from_le_bytes(b);
        }
        words
    }

    /// Inverse of [`Name::to_words`].
    pub(crate) fn from_words(words: [u64; 4]) -> Name {
        let mut raw = [0u8; 32];
        for (chunk, word) in raw.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        let mut bytes = [0u8; NAME_CAPACITY];
        bytes.copy_from_slice(&raw[1..]);
        Name { len: raw[0].min(NAME_CAPACITY as u8), bytes }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_name_round_trips() {
        let n = Name::new("worker-3");
        assert_eq!(n.as_str(), "worker-3");
        assert_eq!(Name::from_words(n.to_words()), n);
    }

    #[test]
    fn long_name_is_truncated_at_capacity() {
        let long = "a-very-long-task-name-that-goes-on-and-on";
        assert_eq!(Name::new(long).as_str(), &long[..NAME_CAPACITY]);
    }

    #[test]
    fn truncation_never_splits_a_character() {
        // 30 ASCII bytes then a 3-byte character straddling the capacity.
        let s = alloc::format!("{}€x", "a".repeat(30));
        let n = Name::new(&s);
        assert_eq!(n.as_str(), "a".repeat(30));
    }

    #[test]
    fn empty_name_is_empty() {
        assert_eq!(Name::EMPTY.as_str(), "");
        assert_eq!(Name::new("").as_str(), "");
    }
}
