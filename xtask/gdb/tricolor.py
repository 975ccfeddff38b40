# tricolor's gdb helpers, in the spirit of Go's runtime-gdb.py. `cargo xtask debug` loads this
# file; by hand: `source xtask/gdb/tricolor.py` in gdb-multiarch with the kernel ELF.
#
#   tricolor-barrier   the write-barrier flag (WRITE_BARRIER) and mode, the collector's phase
#   tricolor-wbbuf     each core's wbBuf fill, barriers and flushes
#   tricolor-tasks     each core's current task and run queue, with stacks and saved SPs
#   tricolor-stacks    every registered stack (boot, system, exception, task)
#   tricolor-heap      heap in use, goal (trigger), cycles, pauses
#   $write_barrier()   the flag's value, for expressions (`p $write_barrier()`)
#
# Plain `p WRITE_BARRIER` finds nothing: the kernel is Rust and gdb wants the crate path,
# `p tricolor_gc::barrier::WRITE_BARRIER`, in Rust mode. The commands switch to Rust mode
# themselves (a frame in assembly, like the exception vectors, leaves gdb in C mode).

import gdb

BARRIER_MARKING = 1
BARRIER_CHECKING = 2
MODES = ["off", "buffered", "direct", "checked", "unsafe-off-during-mark"]
PHASES = ["idle", "mark", "mark-termination", "sweep"]
STACK_KINDS = ["boot", "system", "exception", "task"]
TASK_STATES = ["ready", "running", "exited"]


class RustMode:
    """Evaluates in Rust mode, restoring the language setting after."""

    def __enter__(self):
        self.saved = gdb.parameter("language")
        gdb.execute("set language rust", to_string=True)

    def __exit__(self, *exc):
        gdb.execute("set language " + self.saved, to_string=True)


def ev(expr):
    return gdb.parse_and_eval(expr)


def plain(value):
    """Digs through wrappers (atomics, UnsafeCell, MaybeUninit, ManuallyDrop, newtypes) down to
    the integer, pointer or struct they hold."""
    while True:
        t = value.type.strip_typedefs()
        if t.code != gdb.TYPE_CODE_STRUCT and t.code != gdb.TYPE_CODE_UNION:
            return value
        names = [f.name for f in t.fields()]
        if "value" in names:
            value = value["value"]
        elif t.name and t.name.startswith("core::sync::atomic::Atomic") and len(names) == 1:
            value = value[names[0]]
        elif len(names) == 1 and names[0] in ("__0", "v", "p"):
            value = value[names[0]]
        else:
            return value


def num(value):
    return int(plain(value))


def name_of(name):
    """A tricolor_runtime::name::Name as text."""
    length = int(name["len"])
    data = name["bytes"]
    return "".join(chr(int(data[i])) for i in range(min(length, 31)))


def collector():
    once = ev("tricolor::gc::COLLECTOR")
    if num(once["status"]) != 2:
        return None
    return plain(once["data"])


def cores():
    return num(ev("tricolor::gc::CORES"))


class Command(gdb.Command):
    def __init__(self, name, doc):
        self.__doc__ = doc
        super().__init__(name, gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        with RustMode():
            self.show(arg)


class Barrier(Command):
    def __init__(self):
        super().__init__("tricolor-barrier", "The write-barrier flag and mode, and the collector's phase.")

    def show(self, arg):
        flag = num(ev("tricolor_gc::barrier::WRITE_BARRIER"))
        bits = [n for b, n in ((BARRIER_MARKING, "MARKING"), (BARRIER_CHECKING, "CHECKING")) if flag & b] or ["none"]
        mode = num(ev("tricolor_gc::barrier::MODE"))
        c = collector()
        phase = PHASES[num(c["phase"])] if c is not None else "(no collector yet)"
        print("WRITE_BARRIER = %d (%s)   mode %s   phase %s" % (flag, "|".join(bits), MODES[mode] if mode < len(MODES) else mode, phase))


class WbBuf(Command):
    def __init__(self):
        super().__init__("tricolor-wbbuf", "Each core's write-barrier buffer: entries recorded of its size, barriers and flushes.")

    def show(self, arg):
        # Each core's GcCore is the `gc` field of its per-core block (TPIDR_EL1 + PERCORE_GC_OFFSET).
        blocks = ev("tricolor::percore::PERCORE")
        print("core  wbBuf fill         barriers     flushes")
        for i in range(cores()):
            core = blocks[i]["gc"]
            buf = plain(core["wbbuf"])
            used, end = num(buf["next"]), num(buf["end"])
            stats = core["stats"]
            print(
                "%4d  %4d / %-4d %4d%%  %10d  %10d"
                % (i, used, end, used * 100 // max(end, 1), num(stats["barriers"]), num(stats["flushes"]))
            )


def cpu_sp(core):
    """Core `core`'s live stack pointer (gdb thread `core + 1` is QEMU's CPU#core)."""
    threads = sorted(gdb.selected_inferior().threads(), key=lambda t: t.num)
    if core >= len(threads):
        return None
    selected = gdb.selected_thread()
    try:
        threads[core].switch()
        return int(gdb.selected_frame().read_register("sp")) & 0xFFFFFFFFFFFFFFFF
    except gdb.error:
        return None
    finally:
        if selected is not None:
            selected.switch()


def task_line(task_ptr, current, core=None):
    task = task_ptr.dereference()
    stack = task["stack"]
    lo, hi = int(stack["lo"]), int(stack["hi"])
    if current:
        sp = cpu_sp(core) if core is not None else None
        if sp is not None and lo <= sp <= hi:
            where = "running, sp %#x, %d bytes used" % (sp, hi - sp)
        elif sp is not None:
            where = "running, cpu sp %#x (on another stack: an exception or the system stack)" % sp
        else:
            where = "running"
    else:
        sp = int(plain(task["context"])["sp"])
        where = "sp %#x, %d bytes used" % (sp, hi - sp) if lo <= sp <= hi else "sp %#x" % sp
    state = num(task["state"])
    return "  #%-4d %-18s %-8s stack [%#x, %#x) %3d KiB, %s" % (
        int(plain(task["id"])),
        name_of(task["name"]),
        TASK_STATES[state] if state < len(TASK_STATES) else state,
        lo,
        hi,
        (hi - lo) // 1024,
        where,
    )


def offset_of(type_name, path):
    """Byte offset of the field path `a.b.c` inside `type_name` (from the DWARF layout)."""
    t = gdb.lookup_type(type_name)
    offset = 0
    for name in path.split("."):
        t = t.strip_typedefs()
        field = next((f for f in t.fields() if f.name == name), None)
        if field is None:
            raise gdb.GdbError("%s has no field %s" % (t, name))
        offset += field.bitpos // 8
        t = field.type
    return offset


def read_word(address):
    return int.from_bytes(bytes(gdb.selected_inferior().read_memory(address, 8)), "little")


def queued(queue_address):
    """The tasks of the RunQueue at `queue_address`, front first, walking its intrusive list with
    raw reads (gdb 13 cannot print the list's Option<NonNull> head). gdb has the machine halted,
    so the queue's lock does not matter."""
    task_type = gdb.lookup_type("tricolor_runtime::task::Task").pointer()
    head = offset_of("tricolor_runtime::runq::RunQueue", "tasks.inner.data.value.head")
    link = offset_of("tricolor_runtime::task::Task", "link")
    next_in_link = offset_of("intrusive_collections::linked_list::AtomicLink", "next")
    node = read_word(queue_address + head)
    seen = 0
    # 0 ends the list; 1 is intrusive-collections' "not linked" marker.
    while node not in (0, 1) and seen < 512:
        yield gdb.Value(node - link).cast(task_type)
        node = read_word(node + next_in_link)
        seen += 1


class Tasks(Command):
    def __init__(self):
        super().__init__("tricolor-tasks", "Each core's current task and its run queue, with stacks and saved stack pointers.")

    def show(self, arg):
        blocks = ev("tricolor::percore::PERCORE")
        task_type = gdb.lookup_type("tricolor_runtime::task::Task").pointer()
        queues_once = ev("tricolor::tasks::QUEUES")
        queues = plain(queues_once["data"]) if num(queues_once["status"]) == 2 else None
        for i in range(cores()):
            p = plain(blocks[i]["p"])
            current = int(plain(p["current"]))
            preempt, stats = p["preempt"], p["stats"]
            print(
                "core %d: preempt depth %d%s, switches %d (preemptions %d, yields %d), deferred ticks %d"
                % (
                    i,
                    num(preempt["depth"]),
                    ", a tick pending" if num(preempt["pending"]) else "",
                    num(stats["context_switches"]),
                    num(stats["preemptions"]),
                    num(stats["yields"]),
                    num(preempt["deferred_ticks"]),
                )
            )
            if current:
                print(task_line(gdb.Value(current).cast(task_type), True, i))
            if queues is None:
                continue
            boxed = queues["queues"]
            base = int(boxed["data_ptr"])
            size = gdb.lookup_type("tricolor_runtime::runq::RunQueue").sizeof
            try:
                for task in queued(base + i * size):
                    print(task_line(task, False))
            except (gdb.error, gdb.MemoryError) as e:
                print("  (run queue unreadable: %s)" % e)


class Stacks(Command):
    def __init__(self):
        super().__init__("tricolor-stacks", "Every registered stack: kind, name, range, core.")

    def show(self, arg):
        slots = ev("tricolor::stacks::STACKS")["slots"]
        count = slots.type.range()[1] + 1
        print("kind       name               range                              KiB  core")
        for i in range(count):
            slot = slots[i]
            if num(slot["seq"]) & 3 != 2:
                continue
            lo, hi, meta = num(slot["lo"]), num(slot["hi"]), num(slot["meta"])
            words = [num(slot["name"][j]) for j in range(4)]
            raw = b"".join(w.to_bytes(8, "little") for w in words)
            name = raw[1 : 1 + raw[0]].decode("utf-8", "replace")
            kind = meta & 0xFF
            core = str((meta >> 16) & 0xFFFFFFFF) if meta & (1 << 8) else "-"
            print("%-10s %-18s [%#012x, %#012x) %5d  %s" % (STACK_KINDS[kind] if kind < 4 else kind, name, lo, hi, (hi - lo) // 1024, core))


class Heap(Command):
    def __init__(self):
        super().__init__("tricolor-heap", "The GC heap: in use, goal (trigger), cycles, pauses.")

    def show(self, arg):
        c = collector()
        if c is None:
            print("no collector yet (gc::init has not run)")
            return
        heap, stats = c["heap"], c["stats"]
        # tricolor_gc::sizeclass::HEAP_PAGE_SIZE (8 KiB, Go's page size; constants are not in DWARF).
        size = int(heap["npages"]) * 8192
        used = num(heap["in_use"])
        pauses = num(stats["pauses"])
        print("heap      %d / %d KiB in use (%d%%) at %#x" % (used >> 10, size >> 10, used * 100 // max(size, 1), int(heap["base_addr"])))
        print("goal      %d KiB (the next cycle starts there)   live at last mark %d KiB" % (num(c["trigger"]) >> 10, num(stats["last_marked_bytes"]) >> 10))
        print("cycles    %d   phase %s   mark restarts %d" % (num(stats["cycles"]), PHASES[num(c["phase"])], num(stats["mark_restarts"])))
        print("pauses    %d   max %d us   mean %d us" % (pauses, num(stats["pause_max_ns"]) // 1000, num(stats["pause_total_ns"]) // max(pauses, 1) // 1000))
        print("freed     %d KiB in %d objects   verifier misses %d" % (num(stats["bytes_freed"]) >> 10, num(stats["objects_freed"]), num(stats["verifier_misses"])))


class WriteBarrierFunction(gdb.Function):
    """$write_barrier(): the value of tricolor_gc::barrier::WRITE_BARRIER."""

    def __init__(self):
        super().__init__("write_barrier")

    def invoke(self):
        with RustMode():
            return plain(ev("tricolor_gc::barrier::WRITE_BARRIER"))


Barrier()
WbBuf()
Tasks()
Stacks()
Heap()
WriteBarrierFunction()
print("tricolor: gdb commands tricolor-barrier, tricolor-wbbuf, tricolor-tasks, tricolor-stacks, tricolor-heap; "
      "p $write_barrier() (or p tricolor_gc::barrier::WRITE_BARRIER)")
