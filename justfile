# Thin aliases for `cargo xtask` (install just with `cargo install just`; cargo xtask works without it).

# Boot the live demo in QEMU (4 cores, VirtIO GPU dashboard, console on this terminal: `help`; `quit` or Ctrl-A X ends it).
run *ARGS:
    cargo xtask run {{ARGS}}

# Everything CI runs: lint, host tests, QEMU tests at smp 1 and 4.
test *ARGS:
    cargo xtask test {{ARGS}}

# Only the QEMU tests.
qemu-test *ARGS:
    cargo xtask qemu-test {{ARGS}}

# GC stress matrix (gc-cycle: smp x modes x seeds, then the negative control), e.g. `just stress --quick`.
stress *ARGS:
    cargo xtask stress {{ARGS}}

# cargo fmt --check and clippy on the host and the kernel target.
lint:
    cargo xtask lint

# Boot headless and save the display as a PNG (QMP screendump), e.g. `just screenshot --out shot.png --wait 5`.
screenshot *ARGS:
    cargo xtask screenshot {{ARGS}}

# Boot halted under gdb-multiarch (QEMU gdb stub on :1234) with xtask/gdb/tricolor.py (tricolor-heap, tricolor-tasks, ...).
debug *ARGS:
    cargo xtask debug {{ARGS}}

# Barrier-cost measurements under -icount into results/*.csv and results/*.svg.
bench:
    cargo xtask bench

# Boehm's GCBench on the host (threads 1 and 2, modes buffered and direct) into results/host_gcbench.csv, e.g. `just gcbench-host --quick`.
gcbench-host *ARGS:
    cargo xtask gcbench-host {{ARGS}}

# GCBench on Boehm GC, Go and tricolor's host collector, side by side (results/compare.{csv,svg}), e.g. `just compare --runs 5`; `just compare --profile` runs callgrind.
compare *ARGS:
    cargo xtask compare {{ARGS}}
