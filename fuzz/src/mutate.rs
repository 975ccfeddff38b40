//! The mutator: one corpus entry, a few random edits (AFL/libFuzzer's classic set, without
//! coverage feedback).

pub use tricolor_abi::rng::Rng;

/// Values that break parsers and index arithmetic.
const INTERESTING_8: &[u8] = &[0, 1, 0x7f, 0x80, 0xff, b' ', b'=', b'0', b'9', b'x', b'\0', b'\n'];
const INTERESTING_32: &[u32] = &[
    0,
    1,
    2,
    3,
    4,
    8,
    0x10,
    0x20,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x1000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    u32::MAX,
];

/// Writes into `out` a mutation of a random corpus entry.
pub fn mutate(rng: &mut Rng, corpus: &[Vec<u8>], dictionary: &[&[u8]], max_len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&corpus[rng.below(corpus.len())]);
    let most = if rng.chance(4) { 16 } else { 4 };
    let edits = 1 + rng.below(most);
    for _ in 0..edits {
        edit(rng, corpus, dictionary, out);
    }
    out.truncate(max_len);
}

fn edit(rng: &mut Rng, corpus: &[Vec<u8>], dictionary: &[&[u8]], out: &mut Vec<u8>) {
    let len = out.len();
    match rng.below(12) {
        // Flip one bit.
        0 if len > 0 => {
            let i = rng.below(len);
            out[i] ^= 1 << rng.below(8);
        }
        // Random byte.
        1 if len > 0 => {
            let i = rng.below(len);
            out[i] = rng.next_u64() as u8;
        }
        // Interesting byte.
        2 if len > 0 => {
            let i = rng.below(len);
            out[i] = INTERESTING_8[rng.below(INTERESTING_8.len())];
        }
        // Interesting or nudged 32-bit word, big-endian (device tree) or little-endian (rings).
        3 if len >= 4 => {
            let align = if rng.chance(2) { 3 } else { 0 };
            let i = rng.below(len - 3) & !align;
            let old = u32::from_be_bytes(out[i..i + 4].try_into().unwrap());
            let new = if rng.chance(2) {
                INTERESTING_32[rng.below(INTERESTING_32.len())]
            } else {
                old.wrapping_add((rng.below(33) as u32).wrapping_sub(16))
            };
            let bytes = if rng.chance(2) { new.to_be_bytes() } else { new.to_le_bytes() };
            out[i..i + 4].copy_from_slice(&bytes);
        }
        // Insert random bytes.
        4 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            out.splice(at..at, bytes);
        }
        // Delete a range.
        5 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(16));
            out.drain(at..at + n);
        }
        // Duplicate a range.
        6 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(32));
            let copy = out[at..at + n].to_vec();
            let to = rng.below(len + 1);
            out.splice(to..to, copy);
        }
        // Insert or overwrite with a dictionary token.
        7 | 8 if !dictionary.is_empty() => {
            let token = dictionary[rng.below(dictionary.len())];
            let at = rng.below(len + 1);
            if rng.chance(2) || at + token.len() > len {
                out.splice(at..at, token.iter().copied());
            } else {
                out[at..at + token.len()].copy_from_slice(token);
            }
        }
        // Splice: a piece of another corpus entry.
        9 => {
            let other = &corpus[rng.below(corpus.len())];
            if !other.is_empty() {
                let from = rng.below(other.len());
                let n = 1 + rng.below((other.len() - from).min(64));
                let at = rng.below(len + 1);
                if rng.chance(2) {
                    out.splice(at..at, other[from..from + n].iter().copied());
                } else {
                    let end = (at + n).min(len);
                    out.splice(at..end, other[from..from + n].iter().copied());
                }
            }
        }
        // Truncate.
        10 if len > 0 => out.truncate(rng.below(len)),
        // Swap two bytes.
        _ if len > 1 => {
            let (a, b) = (rng.below(len), rng.below(len));
            out.swap(a, b);
        }
        _ => out.push(rng.next_u64() as u8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_stay_bounded_and_vary() {
        let corpus = vec![b"log=info cores=2".to_vec(), vec![0u8; 40]];
        let mut rng = Rng::new(1);
        let mut out = Vec::new();
        let mut distinct = std::collections::HashSet::new();
        for _ in 0..2000 {
            mutate(&mut rng, &corpus, &[b"gc.heap=", b"0x"], 64, &mut out);
            assert!(out.len() <= 64);
            distinct.insert(out.clone());
        }
        assert!(distinct.len() > 1500, "only {} distinct mutations", distinct.len());
    }
}
