//! Line editing for the serial console: bytes in, an edit to echo or a finished line out.
//!
//! The terminal on the other end (QEMU's `-serial stdio`, a pipe from xtask) does not echo, so
//! the console echoes what the editor accepts. Enter is CR, LF or CR LF (the LF after a CR is
//! ignored, so a CR LF terminal does not submit an empty line). Backspace and DEL erase one
//! character, Ctrl-U and Ctrl-C the whole line. Other control bytes and non-ASCII bytes are
//! ignored; a line longer than the buffer keeps its first `N` bytes and is reported too long.

/// What one byte did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edit {
    /// Nothing visible changed.
    None,
    /// This character was appended: echo it.
    Append(u8),
    /// The last character was erased: echo backspace, space, backspace.
    Erase,
    /// The whole line (this many characters) was erased.
    EraseLine(usize),
    /// Enter: [`LineEditor::line`] holds the finished line until the next byte.
    Submit,
}

/// A line being typed, at most `N` bytes.
pub struct LineEditor<const N: usize> {
    buf: [u8; N],
    len: usize,
    /// Characters typed beyond `N` on this line (dropped).
    overflow: usize,
    /// The previous byte was a CR (a following LF belongs to it).
    after_cr: bool,
    /// The previous byte submitted the line: the next byte starts a new one.
    submitted: bool,
}

impl<const N: usize> Default for LineEditor<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineEditor<N> {
    /// An empty line.
    pub const fn new() -> Self {
        Self { buf: [0; N], len: 0, overflow: 0, after_cr: false, submitted: false }
    }

    /// Feeds one byte.
    pub fn feed(&mut self, byte: u8) -> Edit {
        let after_cr = core::mem::replace(&mut self.after_cr, byte == b'\r');
        if byte == b'\n' && after_cr {
            // The second half of CR LF: the line stays submitted.
            return Edit::None;
        }
        if self.submitted {
            self.submitted = false;
            self.len = 0;
            self.overflow = 0;
        }
        match byte {
            b'\r' | b'\n' => {
                self.submitted = true;
                Edit::Submit
            }
            0x08 | 0x7f => {
                if self.overflow > 0 {
                    self.overflow -= 1;
                    Edit::None
                } else if self.len > 0 {
                    self.len -= 1;
                    Edit::Erase
                } else {
                    Edit::None
                }
            }
            0x03 | 0x15 => {
                let erased = self.len;
                self.len = 0;
                self.overflow = 0;
                if erased > 0 {
                    Edit::EraseLine(erased)
                } else {
                    Edit::None
                }
            }
            0x20..=0x7e if self.len < N => {
                self.buf[self.len] = byte;
                self.len += 1;
                Edit::Append(byte)
            }
            0x20..=0x7e => {
                self.overflow += 1;
                Edit::None
            }
            _ => Edit::None,
        }
    }

    /// The line so far (after [`Edit::Submit`]: the finished line). Only printable ASCII is ever
    /// stored, so it is always valid UTF-8.
    pub fn line(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// Characters typed past the buffer on this line and dropped (0: the line is whole).
    pub fn overflow(&self) -> usize {
        self.overflow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn type_all<const N: usize>(editor: &mut LineEditor<N>, bytes: &[u8]) -> Vec<Edit> {
        bytes.iter().map(|&b| editor.feed(b)).collect()
    }

    #[test]
    fn printable_bytes_append_and_enter_submits() {
        let mut e = LineEditor::<16>::new();
        let edits = type_all(&mut e, b"gc\r");
        assert_eq!(edits, [Edit::Append(b'g'), Edit::Append(b'c'), Edit::Submit]);
        assert_eq!(e.line(), "gc");
    }

    #[test]
    fn crlf_is_one_enter_and_lf_alone_is_enter() {
        let mut e = LineEditor::<16>::new();
        assert_eq!(type_all(&mut e, b"a\r\n"), [Edit::Append(b'a'), Edit::Submit, Edit::None]);
        assert_eq!(e.line(), "a");
        assert_eq!(type_all(&mut e, b"b\n"), [Edit::Append(b'b'), Edit::Submit]);
        assert_eq!(e.line(), "b");
        // Two CRs are two (the second empty) lines.
        assert_eq!(type_all(&mut e, b"\r\r"), [Edit::Submit, Edit::Submit]);
        assert_eq!(e.line(), "");
    }

    #[test]
    fn backspace_erases_and_ctrl_u_clears() {
        let mut e = LineEditor::<16>::new();
        type_all(&mut e, b"modd");
        assert_eq!(e.feed(0x7f), Edit::Erase);
        assert_eq!(e.feed(0x08), Edit::Erase);
        assert_eq!(e.line(), "mo");
        assert_eq!(e.feed(0x15), Edit::EraseLine(2));
        assert_eq!(e.feed(0x08), Edit::None, "nothing left to erase");
        type_all(&mut e, b"stats\r");
        assert_eq!(e.line(), "stats");
    }

    #[test]
    fn control_and_non_ascii_bytes_are_ignored() {
        let mut e = LineEditor::<16>::new();
        assert_eq!(
            type_all(&mut e, &[0x1b, b'[', b'A', 0xc3, 0xa9, 0x00]).iter().filter(|&&x| x != Edit::None).count(),
            2
        );
        assert_eq!(e.line(), "[A");
    }

    #[test]
    fn an_overlong_line_keeps_its_start_and_says_so() {
        let mut e = LineEditor::<4>::new();
        type_all(&mut e, b"abcdef");
        assert_eq!((e.line(), e.overflow()), ("abcd", 2));
        // Backspace first takes back the dropped characters.
        assert_eq!(e.feed(0x7f), Edit::None);
        assert_eq!(e.overflow(), 1);
        assert_eq!(e.feed(b'\r'), Edit::Submit);
        assert_eq!((e.line(), e.overflow()), ("abcd", 1));
        // The next line starts clean.
        type_all(&mut e, b"x\r");
        assert_eq!((e.line(), e.overflow()), ("x", 0));
    }
}
