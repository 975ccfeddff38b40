//! The boot sequence on the boot core: device tree, console, command line, memory, secondaries,
//! then the selected test or stress suite, or else the live demo (`demo`).

use crate::{console, devicetree, exit, fault, irq, kprintln, memory, percore, registry, smp, tasks, vm};
use log::{info, warn};
use spin::Once;
use tricolor_arch::{cpu, exception, semihosting};
use tricolor_kernel::cmdline;

static MACHINE: Once<devicetree::Machine> = Once::new();

/// The machine description (after boot).
pub fn machine() -> &'static devicetree::Machine {
    MACHINE.get().expect("boot completed before machine() is used")
}

/// Rust entry on the boot core (called from boot.s with the boot-protocol x0).
#[unsafe(no_mangle)]
extern "C" fn tricolor_boot_primary(boot_x0: usize) -> ! {
    let start = cpu::counter();
    percore::init_this_core(0);
    exception::set_handler(fault::handle);
    // Before any IRQ is unmasked and before other cores start: the IRQ entry searches it.
    crate::gc::barrier::init();

    let machine = match devicetree::discover(boot_x0) {
        Ok(m) => MACHINE.call_once(|| m),
        Err(error) => {
            semihosting::write0(error.message());
            exit::exit(exit::BAD_CONFIG);
        }
    };
    match machine.uart {
        Some(base) => console::init(base),
        None => semihosting::write0(c"tricolor: no arm,pl011 UART in the device tree; console is silent\n"),
    }
    console::init_logger();

    let config = match cmdline::parse(machine.bootargs) {
        Ok(config) => config,
        Err(error) => {
            kprintln!("tricolor: bad kernel command line \"{}\": {}", machine.bootargs, error);
            exit::exit(exit::BAD_CONFIG);
        }
    };
    console::set_level(config.log);
    info!("tricolor {} on core 0 (mpidr {:#x})", env!("CARGO_PKG_VERSION"), cpu::mpidr());
    info!("command line: \"{}\"", machine.bootargs);

    memory::init(machine);
    if let Err(error) = vm::init(machine) {
        kprintln!("tricolor: cannot build the kernel page tables: {error:?}");
        exit::exit(exit::BAD_CONFIG);
    }
    let (img_lo, img_hi) = memory::image_range();
    let frames = memory::frame_stats();
    info!(
        "RAM: {} MiB at {:#x}; image {:#x}..{:#x} ({} KiB); {} MiB free",
        machine.ram.1 >> 20,
        machine.ram.0,
        img_lo,
        img_hi,
        (img_hi - img_lo) >> 10,
        (frames.free_pages * tricolor_abi::PAGE_SIZE) >> 20
    );

    // Before anything records (the other cores, the scheduler, stop-the-world).
    crate::timeline::init(machine.cpu_count.min(config.cores), config.timeline_dump);
    let interrupts = irq::init(machine);
    tasks::init(tricolor_abi::MAX_CORES);
    tasks::set_tick_slice_us(config.tick_slice_us);
    crate::stw::init();
    crate::gc::safepoint::init();
    tasks::adopt_boot_flow();
    percore::mark_online();
    let cores = match interrupts {
        Ok(()) => {
            info!("interrupt controller: {}", irq::describe());
            config.cores
        }
        Err(why) => {
            // One line, then a one-core boot: stop-the-world, the collector's requests and
            // preemption all need interrupts, and a core that cannot be stopped would hang them.
            warn!("{why}: no interrupts, so running on the boot core only");
            1
        }
    };
    let wanted = machine.cpu_count.min(cores);
    let online = smp::start_secondaries(machine, cores);
    if machine.cpus_ignored > 0 {
        warn!("{} CPUs in the device tree beyond the supported {}", machine.cpus_ignored, tricolor_abi::MAX_CORES);
    }
    info!("{online} of {wanted} cores online");
    match crate::gc::init(&config) {
        Ok(()) => {}
        Err(crate::gc::InitError::NoFrames(why)) => refuse(format_args!(
            "gc.heap: a {} MiB GC heap does not fit in this machine's {} MiB of RAM: {why}; choose a smaller gc.heap=",
            config.gc_heap >> 20,
            machine.ram.1 >> 20
        )),
        Err(why) => refuse(format_args!("gc.heap: a {} MiB GC heap: {why}", config.gc_heap >> 20)),
    }

    let ticks = cpu::counter() - start;
    info!(
        "ready in {} us ({} counter ticks at {} Hz)",
        ticks * 1_000_000 / cpu::counter_frequency().max(1),
        ticks,
        cpu::counter_frequency()
    );

    match (config.test, config.suite) {
        (Some(_), Some(_)) => {
            kprintln!("tricolor: test= and suite= both given; choose one");
            exit::exit(exit::BAD_CONFIG)
        }
        (Some(name), None) => registry::run_test(name, &config),
        (None, Some(name)) => registry::run_suite(name, &config),
        (None, None) => crate::demo::run(machine, &config),
    }
}

/// Stops the boot: the command line asked for something this machine cannot provide (a GC heap
/// larger than free RAM, a framebuffer source that cannot hold the display). Like a bad command
/// line: the reason on the console and exit status 2, instead of running without it.
pub fn refuse(why: core::fmt::Arguments<'_>) -> ! {
    kprintln!("tricolor: impossible request: {why}");
    exit::exit(exit::BAD_CONFIG)
}
