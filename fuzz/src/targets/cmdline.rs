//! The kernel command line (`tricolor_kernel::cmdline::parse`): any bytes from
//! `/chosen/bootargs`. Either a configuration whose every value is in its documented range, or an
//! error whose message names the problem and lists the valid keys; never a panic.

use crate::{Outcome, Target};
use tricolor_abi::MAX_CORES;
use tricolor_kernel::cmdline::{self, CmdlineError, KEYS};

pub static TARGET: Target = Target { name: "cmdline", run, dictionary: DICTIONARY, max_len: 512 };

static DICTIONARY: &[&[u8]] = &[
    b"log=",
    b"test=",
    b"cores=",
    b"seed=",
    b"fb=",
    b"virtio.fence=",
    b"virtio.complete=",
    b"gc.mode=",
    b"gc.heap=",
    b"gc.wbbuf=",
    b"gc.percent=",
    b"gc.verify=",
    b"virtio.timeout=",
    b"gc.torture=",
    b"suite=",
    b"suite.cycles=",
    b" ",
    b"=",
    b"0x",
    b"K",
    b"M",
    b"G",
    b"18446744073709551615",
    b"18446744073709551616",
    b"4294967296",
    b"-1",
    b"on",
    b"off",
    b"static",
    b"pages",
    b"gc",
    b"none",
    b"after-progress",
    b"irq",
    b"\t",
    b"\xc3\xa9",
    b"\xff",
];

fn run(data: &[u8]) -> Outcome {
    // The kernel reads bootargs as a string; bytes that are not UTF-8 arrive replaced.
    let line = String::from_utf8_lossy(data);
    match cmdline::parse(&line) {
        Ok(c) => {
            let checks = [
                ("cores", (1..=MAX_CORES).contains(&c.cores)),
                ("gc.heap", ((1 << 20)..=(768 << 20)).contains(&c.gc_heap)),
                ("gc.wbbuf", (2..=4096).contains(&c.gc_wbbuf)),
                ("gc.percent", (1..=10_000).contains(&c.gc_percent)),
                ("suite.cycles", (1..=100_000).contains(&c.suite_cycles)),
                ("virtio.timeout", c.virtio_timeout != Some(0)),
                ("test", c.test != Some("")),
                ("suite", c.suite != Some("")),
            ];
            match checks.iter().find(|(_, ok)| !ok) {
                Some((key, _)) => Err(format!("accepted {key} out of range: {c:?}")),
                None => Ok("ok".into()),
            }
        }
        Err(e) => {
            let text = e.to_string();
            if !text.contains("; valid keys:") || !KEYS.iter().all(|k| text.contains(k.name)) {
                return Err(format!("error message does not list the valid keys: {text}"));
            }
            Ok(match e {
                CmdlineError::UnknownKey { .. } => "err:unknown-key".into(),
                CmdlineError::BadValue { key, .. } => format!("err:bad-value:{key}"),
                CmdlineError::MissingValue { .. } => "err:missing-value".into(),
                CmdlineError::Duplicate { .. } => "err:duplicate".into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn smoke() {
        let report = crate::smoke(&super::TARGET, 2.0);
        assert!(report.kinds.contains_key("ok") && report.kinds.len() > 5, "{report}");
    }
}
