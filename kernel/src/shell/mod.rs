//! The serial console's input side, with no hardware in it (the kernel binary wires it to the
//! PL011 and a task):
//!
//! - [`ring`]: the lock-free single-producer single-consumer byte ring the UART's receive
//!   interrupt fills;
//! - [`line`]: line editing (echo, backspace, CR/LF/CR LF, overlong lines);
//! - [`command`]: the commands (`help`, `stats`, `gc`, `mode`, `workload`, `gctrace`, `verify`,
//!   `quit`), their parser and the help text.

pub mod command;
pub mod line;
pub mod ring;
