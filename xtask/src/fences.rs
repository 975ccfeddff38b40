//! `cargo xtask check-fences`: disassembles the release kernel and checks that every DMA barrier
//! the virtqueue needs is in the machine code, of the kind Linux's arm64 virtio uses, and on the
//! right side of the access it orders.
//!
//! `virtio/src/fence.rs` puts each barrier and the access it orders in one `#[inline(never)]`
//! function, so a function's instructions say everything: the caller's accesses come before the
//! call or after the return. A rule names a function and two steps that must appear in that
//! order; after an access, the barrier must come before any other memory access (stack spills
//! aside), so that nothing slips between the access and the barrier that orders it. A missing function is a failure
//! too: it was inlined or renamed, and the check would otherwise pass by finding nothing.
//!
//! The disassembler is `llvm-objdump` from rustup's `llvm-tools` component (rust-toolchain.toml
//! lists it; [`crate::setup::llvm_objdump`] adds it to an older toolchain).

use crate::Result;
use std::path::Path;
use std::process::Command;

/// One side of an ordering: a barrier instruction or a memory access.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// `dmb oshst`, `dsb sy`, ...: mnemonic and option, matched exactly.
    Barrier(&'static str),
    /// A load or store with this mnemonic; `offset` (e.g. `#0x50`) must appear in the operand.
    Access { mnemonic: &'static str, offset: Option<&'static str> },
}

/// "In `function`, `first` comes before `then`, with no other memory access in between."
#[derive(Debug)]
pub struct Rule {
    /// Which protocol step this is, for the report.
    pub what: &'static str,
    /// Substrings the (demangled) symbol must all contain.
    pub function: &'static [&'static str],
    pub first: Step,
    pub then: Step,
}

/// The kernel's DMA ordering points (virtio/src/fence.rs, virtio/src/transport/mmio.rs).
pub const RULES: &[Rule] = &[
    Rule {
        what: "publish: dma_wmb (dmb oshst) before the avail.idx store (2.7.13.3.1)",
        function: &["DmaFence::publish_avail_idx"],
        first: Step::Barrier("dmb oshst"),
        then: Step::Access { mnemonic: "strh", offset: None },
    },
    Rule {
        what: "notify decision: mb (dsb sy) between the avail.idx store and the flags/avail_event load (2.7.13.4.1)",
        function: &["DmaFence::read_suppression"],
        first: Step::Barrier("dsb sy"),
        then: Step::Access { mnemonic: "ldrh", offset: None },
    },
    Rule {
        what: "re-arm: used_event/flags store, then mb (dsb sy) before the used.idx re-check (2.7.14 note)",
        function: &["DmaFence::store_then_mb"],
        first: Step::Access { mnemonic: "strh", offset: None },
        then: Step::Barrier("dsb sy"),
    },
    Rule {
        what: "poll (acquire): used.idx load, then dma_rmb (dmb oshld) before the element read (2.7.14)",
        function: &["DmaFence::poll_then_rmb"],
        first: Step::Access { mnemonic: "ldrh", offset: None },
        then: Step::Barrier("dmb oshld"),
    },
    Rule {
        what: "poll (seqcst): used.idx load, then mb (dsb sy) before the element read",
        function: &["DmaFence::poll_then_mb"],
        first: Step::Access { mnemonic: "ldrh", offset: None },
        then: Step::Barrier("dsb sy"),
    },
    Rule {
        what: "poll (after-progress): used.idx load, then dma_rmb (dmb oshld) on progress",
        function: &["DmaFence::poll_rmb_on_progress"],
        first: Step::Access { mnemonic: "ldrh", offset: None },
        then: Step::Barrier("dmb oshld"),
    },
    Rule {
        what: "doorbell: writel's __iowmb (dmb oshst) before the QueueNotify (0x50) MMIO store",
        function: &["MmioTransport", "Transport>::notify"],
        first: Step::Barrier("dmb oshst"),
        then: Step::Access { mnemonic: "str", offset: Some("#0x50]") },
    },
];

/// One disassembled instruction: mnemonic and operand text.
#[derive(Debug, Clone, PartialEq)]
pub struct Insn {
    pub mnemonic: String,
    pub operands: String,
}

impl Insn {
    fn text(&self) -> String {
        format!("{} {}", self.mnemonic, self.operands).trim().to_string()
    }

    fn is_barrier(&self, which: &str) -> bool {
        self.text() == which
    }

    /// Loads and stores of memory other than the stack (spills do not reach a device).
    fn is_memory_access(&self) -> bool {
        let m = self.mnemonic.as_str();
        let load_store = (m.starts_with("ld") || m.starts_with("st") || m.starts_with("ca") || m.starts_with("swp"))
            && self.operands.contains('[');
        load_store && !self.operands.contains("[sp")
    }

    fn matches(&self, step: &Step) -> bool {
        match *step {
            Step::Barrier(which) => self.is_barrier(which),
            Step::Access { mnemonic, offset } => {
                self.mnemonic == mnemonic && offset.is_none_or(|o| self.operands.contains(o))
            }
        }
    }
}

/// Rust legacy-mangled names llvm-objdump leaves half-decoded (`_$LT$...$GT$`), made readable.
pub fn readable_symbol(name: &str) -> String {
    let mut s = name.strip_prefix('_').filter(|rest| rest.starts_with('$')).unwrap_or(name).to_string();
    for (from, to) in [("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$C$", ","), ("$RF$", "&"), ("$BP$", "*")] {
        s = s.replace(from, to);
    }
    let s = s.replace("..", "::");
    // Drop the hash suffix (`::h0123456789abcdef`).
    match s.rfind("::h") {
        Some(i) if s[i + 3..].len() == 16 && s[i + 3..].chars().all(|c| c.is_ascii_hexdigit()) => s[..i].to_string(),
        _ => s,
    }
}

/// `llvm-objdump -d --no-show-raw-insn` output split into (symbol, instructions).
pub fn parse_disassembly(text: &str) -> Vec<(String, Vec<Insn>)> {
    let mut functions: Vec<(String, Vec<Insn>)> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(header) = trimmed.strip_suffix(">:") {
            if let Some((addr, name)) = header.split_once(" <") {
                if addr.chars().all(|c| c.is_ascii_hexdigit()) {
                    functions.push((readable_symbol(name), Vec::new()));
                    continue;
                }
            }
        }
        let Some((addr, rest)) = trimmed.split_once(':') else { continue };
        if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        let Some((_, body)) = functions.last_mut() else { continue };
        let rest = rest.trim();
        if rest.is_empty() {
            continue;
        }
        let (mnemonic, operands) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        // Drop a trailing `<symbol+off>` annotation on branches.
        let operands = operands.split(" <").next().unwrap_or("").trim();
        body.push(Insn { mnemonic: mnemonic.to_string(), operands: operands.to_string() });
    }
    functions
}

/// Checks one function's instructions against a rule.
pub fn check_function(rule: &Rule, insns: &[Insn]) -> std::result::Result<(), String> {
    let describe = |s: &Step| match *s {
        Step::Barrier(b) => format!("`{b}`"),
        Step::Access { mnemonic, offset: Some(o) } => format!("`{mnemonic} ..., {o}`"),
        Step::Access { mnemonic, offset: None } => format!("`{mnemonic}`"),
    };
    let first = insns.iter().position(|i| i.matches(&rule.first)).ok_or_else(|| {
        let other = insns.iter().position(|i| i.matches(&rule.then));
        match other {
            Some(_) => format!("{} is missing ({} is there unordered)", describe(&rule.first), describe(&rule.then)),
            None => format!("neither {} nor {} found", describe(&rule.first), describe(&rule.then)),
        }
    })?;
    if let Some(early) = insns[..first].iter().position(|i| i.matches(&rule.then)) {
        return Err(format!(
            "{} comes before {} (instruction {early} vs {first}): the barrier is on the wrong side",
            describe(&rule.then),
            describe(&rule.first)
        ));
    }
    let rest = &insns[first + 1..];
    let then = rest
        .iter()
        .position(|i| i.matches(&rule.then))
        .ok_or_else(|| format!("{} is missing after {}", describe(&rule.then), describe(&rule.first)))?;
    // After an access, the barrier must come before any other access (an element read slipped
    // above the read barrier would be unordered). Before an access, what sits between the barrier
    // and it is ordered by the barrier too (e.g. the fence counter's update), so only a return
    // (the access not reached on that path) is wrong.
    let access_first = matches!(rule.first, Step::Access { .. });
    if let Some(between) = rest[..then].iter().find(|i| i.mnemonic == "ret" || (access_first && i.is_memory_access())) {
        return Err(format!(
            "`{}` between {} and {}: the barrier does not directly order the access",
            between.text(),
            describe(&rule.first),
            describe(&rule.then)
        ));
    }
    Ok(())
}

/// Checks every rule against a whole disassembly; returns one line per rule checked.
pub fn check_disassembly(text: &str) -> Result<Vec<String>> {
    let functions = parse_disassembly(text);
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for rule in RULES {
        let matching: Vec<_> =
            functions.iter().filter(|(name, _)| rule.function.iter().all(|part| name.contains(part))).collect();
        if matching.is_empty() {
            failures.push(format!(
                "{}: no function named like {:?} in the kernel (inlined? it must stay #[inline(never)])",
                rule.what, rule.function
            ));
            continue;
        }
        for (name, insns) in matching {
            match check_function(rule, insns) {
                Ok(()) => report.push(format!("ok   {} [{name}]", rule.what)),
                Err(why) => failures.push(format!("{}: in {name}: {why}", rule.what)),
            }
        }
    }
    if failures.is_empty() {
        Ok(report)
    } else {
        Err(format!("check-fences: {} problem(s):\n  {}", failures.len(), failures.join("\n  ")))
    }
}

/// Disassembles `elf` and checks it.
pub fn run(elf: &Path) -> Result {
    let objdump = crate::setup::llvm_objdump()?;
    let output = Command::new(&objdump)
        .args(["-d", "--demangle", "--no-show-raw-insn"])
        .arg(elf)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", objdump.display()))?;
    if !output.status.success() {
        return Err(format!("{} failed: {}", objdump.display(), String::from_utf8_lossy(&output.stderr)));
    }
    let report = check_disassembly(&String::from_utf8_lossy(&output.stdout))?;
    for line in &report {
        println!("check-fences: {line}");
    }
    println!("check-fences: {} barrier placements verified in {}", report.len(), elf.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The relevant functions as llvm-objdump printed them for the release kernel.
    const GOOD: &str = "
000000004020a1c8 <_$LT$tricolor_virtio..transport..mmio..MmioTransport$LT$R$GT$$u20$as$u20$tricolor_virtio..transport..Transport$GT$::notify::h6146dd5bd699d015>:
4020a1c8:      \tdmb\toshst
4020a1cc:      \tstr\twzr, [x0, #0x50]
4020a1d0:      \tret

000000004024dcc8 <tricolor_virtio::fence::DmaFence::poll_then_mb::h767ec76816220353>:
4024dcc8:      \tmov\tx8, x0
4024dccc:      \tldrh\tw0, [x1]
4024dcd0:      \tdsb\tsy
4024dcd4:      \tldr\tx9, [x8, #0x8]
4024dcd8:      \tadd\tx9, x9, #0x1
4024dcdc:      \tstr\tx9, [x8, #0x8]
4024dce0:      \tret

000000004024dce4 <tricolor_virtio::fence::DmaFence::poll_then_rmb::h6d8657b365e3d777>:
4024dce4:      \tmov\tx8, x0
4024dce8:      \tldrh\tw0, [x1]
4024dcec:      \tdmb\toshld
4024dcf0:      \tldr\tx9, [x8, #0x10]
4024dcf4:      \tadd\tx9, x9, #0x1
4024dcf8:      \tstr\tx9, [x8, #0x10]
4024dcfc:      \tret

000000004024dd00 <tricolor_virtio::fence::DmaFence::store_then_mb::ha206627ddd58e955>:
4024dd00:      \tstrh\tw2, [x1]
4024dd04:      \tdsb\tsy
4024dd08:      \tldr\tx8, [x0, #0x8]
4024dd0c:      \tadd\tx8, x8, #0x1
4024dd10:      \tstr\tx8, [x0, #0x8]
4024dd14:      \tret

000000004024dd18 <tricolor_virtio::fence::DmaFence::read_suppression::hf094ae81a1d32b9f>:
4024dd18:      \tdsb\tsy
4024dd1c:      \tldr\tx8, [x0, #0x8]
4024dd20:      \tadd\tx8, x8, #0x1
4024dd24:      \tstr\tx8, [x0, #0x8]
4024dd28:      \tldrh\tw0, [x1]
4024dd2c:      \tret

000000004024dd30 <tricolor_virtio::fence::DmaFence::publish_avail_idx::h887cc930bbe99227>:
4024dd30:      \tdmb\toshst
4024dd34:      \tstrh\tw2, [x1]
4024dd38:      \tldr\tx8, [x0]
4024dd3c:      \tadd\tx8, x8, #0x1
4024dd40:      \tstr\tx8, [x0]
4024dd44:      \tret

000000004024dd48 <tricolor_virtio::fence::DmaFence::poll_rmb_on_progress::h2416a22db5940e8e>:
4024dd48:      \tldrh\tw8, [x1]
4024dd4c:      \tcmp\tw8, w2, uxth
4024dd50:      \tb.eq\t0x4024dd64 <tricolor_virtio::fence::DmaFence::poll_rmb_on_progress::h2416a22db5940e8e+0x1c>
4024dd54:      \tdmb\toshld
4024dd58:      \tldr\tx9, [x0, #0x10]
4024dd5c:      \tadd\tx9, x9, #0x1
4024dd60:      \tstr\tx9, [x0, #0x10]
4024dd64:      \tmov\tw0, w8
4024dd68:      \tret
";

    #[test]
    fn the_kernels_barrier_placements_pass() {
        let report = check_disassembly(GOOD).expect("good disassembly");
        assert_eq!(report.len(), RULES.len());
    }

    #[test]
    fn names_are_made_readable() {
        assert_eq!(
            readable_symbol("_$LT$tricolor_virtio..transport..mmio..MmioTransport$LT$R$GT$$u20$as$u20$tricolor_virtio..transport..Transport$GT$::notify::h6146dd5bd699d015"),
            "<tricolor_virtio::transport::mmio::MmioTransport<R> as tricolor_virtio::transport::Transport>::notify"
        );
        assert_eq!(
            readable_symbol("tricolor_virtio::fence::DmaFence::poll_then_mb::h767ec76816220353"),
            "tricolor_virtio::fence::DmaFence::poll_then_mb"
        );
    }

    fn failure(text: &str) -> String {
        check_disassembly(text).expect_err("must fail")
    }

    #[test]
    fn a_missing_barrier_fails() {
        // The publish without its dmb oshst (what core::sync::atomic::fence's dmb ish would be).
        let text = GOOD.replacen("4024dd30:      \tdmb\toshst\n", "4024dd30:      \tdmb\tish\n", 1);
        let why = failure(&text);
        assert!(why.contains("publish") && why.contains("`dmb oshst` is missing"), "{why}");
        assert!(why.contains("1 problem"), "{why}");
        // The doorbell without any barrier.
        let text = GOOD.replacen("4020a1c8:      \tdmb\toshst\n", "", 1);
        assert!(failure(&text).contains("doorbell"));
        // A poll without its read barrier.
        let text = GOOD.replacen("4024dcec:      \tdmb\toshld\n", "", 1);
        assert!(failure(&text).contains("poll (acquire)"));
    }

    #[test]
    fn a_barrier_on_the_wrong_side_fails() {
        // Seed 002's placement: the read barrier before the used.idx load.
        let text = GOOD.replacen(
            "4024dce8:      \tldrh\tw0, [x1]\n4024dcec:      \tdmb\toshld\n",
            "4024dce8:      \tdmb\toshld\n4024dcec:      \tldrh\tw0, [x1]\n",
            1,
        );
        let why = failure(&text);
        assert!(why.contains("poll (acquire)") && why.contains("wrong side"), "{why}");
        // The publish store ahead of its barrier.
        let text = GOOD.replacen(
            "4024dd30:      \tdmb\toshst\n4024dd34:      \tstrh\tw2, [x1]\n",
            "4024dd30:      \tstrh\tw2, [x1]\n4024dd34:      \tdmb\toshst\n",
            1,
        );
        assert!(failure(&text).contains("wrong side"));
    }

    #[test]
    fn an_access_between_barrier_and_access_fails() {
        // The element read slipped between the used.idx load and the barrier.
        let text = GOOD.replacen(
            "4024dcec:      \tdmb\toshld\n",
            "4024dcea:      \tldr\tx3, [x1, #0x4]\n4024dcec:      \tdmb\toshld\n",
            1,
        );
        let why = failure(&text);
        assert!(why.contains("`ldr x3, [x1, #0x4]` between"), "{why}");
        // A stack spill in between is not a device-visible access.
        let text = GOOD.replacen(
            "4024dcec:      \tdmb\toshld\n",
            "4024dcea:      \tstr\tx3, [sp, #0x8]\n4024dcec:      \tdmb\toshld\n",
            1,
        );
        assert!(check_disassembly(&text).is_ok());
    }

    #[test]
    fn an_inlined_function_fails() {
        let start = GOOD.find("000000004024dd00").unwrap();
        let end = GOOD.find("000000004024dd18").unwrap();
        let text = format!("{}{}", &GOOD[..start], &GOOD[end..]);
        assert!(failure(&text).contains("no function named like [\"DmaFence::store_then_mb\"]"));
    }
}
