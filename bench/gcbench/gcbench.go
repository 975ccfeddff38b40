// GCBench (Boehm's binary-tree benchmark) in Go, written for tricolor's `cargo xtask compare`. It
// does what tricolor's host GCBench (gc/src/gcbench.rs) and bench/gcbench/boehm.c do, step for
// step:
//  1. build and drop a stretch tree;
//  2. build a long-lived tree top down and an array of doubles (first half 1/i), live to the end;
//  3. for depths min..max step 2, build numIters(d) trees top down (Populate) and as many bottom
//     up (MakeTree), dropping each at once;
//  4. check the array and walk the long-lived tree, excluded from the time.
//
// A node holds two pointers and two 64-bit payload words, as tricolor's.
//
// Figures come from the Go runtime: runtime/metrics /gc/pauses:seconds (a histogram of every
// stop-the-world pause: p99 and max are bucket upper bounds, at most 1/16 above the pause) and
// /gc/cycles/total:gc-cycles; the heap in use (/memory/classes/heap/objects:bytes plus
// .../heap/unused:bytes, Go's HeapInuse) sampled at the end of every cycle by a finalizer and at
// the end. GC wall time is not kept by the runtime: run with GODEBUG=gctrace=1 and add the
// "ms clock" fields of its lines (xtask compare does).
//
// Build: go build -o go-gcbench gcbench.go      Run: go-gcbench [full|quick|tiny]
// Prints a summary and one line `BENCH peer-gcbench runtime=go key=value ...`; exits 1 if a
// check fails.
package main

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

type shape struct {
	name                                   string
	stretch, longLived, arrayLen, min, max int
}

// The same sizes as tricolor's gcbench::Size.
var shapes = []shape{
	{"full", 18, 16, 500000, 4, 16},
	{"quick", 14, 12, 50000, 4, 10},
	{"tiny", 8, 6, 1000, 4, 6},
}

type node struct {
	left, right *node
	i, j        uint64
}

func payloadJ(i uint64) uint64 { return (i * 0x9E3779B97F4A7C15) ^ 0x676362656E636821 }

func treeSize(depth int) uint64 { return (1 << (depth + 1)) - 1 }

var allocs uint64

func newNode(height uint64) *node {
	allocs++
	return &node{i: height, j: payloadJ(height)}
}

// Boehm's Populate: give n children down to depth levels, top down.
func populate(depth int, n *node) {
	n.i = uint64(depth)
	n.j = payloadJ(uint64(depth))
	if depth <= 0 {
		return
	}
	n.left = newNode(0)
	n.right = newNode(0)
	populate(depth-1, n.left)
	populate(depth-1, n.right)
}

// Boehm's MakeTree: a tree of depth built bottom up.
func makeTree(depth int) *node {
	if depth <= 0 {
		return newNode(0)
	}
	left := makeTree(depth - 1)
	right := makeTree(depth - 1)
	n := newNode(uint64(depth))
	n.left = left
	n.right = right
	return n
}

func checkTop(n *node, depth int) bool {
	if n.i != uint64(depth) || n.j != payloadJ(uint64(depth)) {
		return false
	}
	if depth == 0 {
		return n.left == nil && n.right == nil
	}
	return n.left != nil && n.right != nil && n.left.i == uint64(depth-1) && n.right.i == uint64(depth-1)
}

// Node count of a complete, intact tree, or 0.
func verifyTree(n *node, depth int) uint64 {
	if !checkTop(n, depth) {
		return 0
	}
	if depth == 0 {
		return 1
	}
	l, r := verifyTree(n.left, depth-1), verifyTree(n.right, depth-1)
	if l == 0 || r == 0 {
		return 0
	}
	return l + r + 1
}

func fail(what string) {
	fmt.Fprintf(os.Stderr, "go-gcbench: FAILED: %s\n", what)
	os.Exit(1)
}

func heapInUse() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64() + s[1].Value.Uint64()
}

// Peak heap in use, sampled after every cycle by a finalizer that re-arms itself.
var peakHeap uint64
var sampling int32 = 1

type sentinel struct{ _ [16]byte }

func arm() {
	s := new(sentinel)
	runtime.SetFinalizer(s, func(*sentinel) {
		if h := heapInUse(); h > atomic.LoadUint64(&peakHeap) {
			atomic.StoreUint64(&peakHeap, h)
		}
		if atomic.LoadInt32(&sampling) != 0 {
			arm()
		}
	})
}

// The quantile q of a time histogram: the upper bound of the bucket holding the nearest-rank
// element (the last finite bound for the open top bucket).
func histQuantile(h *metrics.Float64Histogram, q float64) float64 {
	var total uint64
	for _, c := range h.Counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank {
			if math.IsInf(h.Buckets[i+1], 1) {
				return h.Buckets[i]
			}
			return h.Buckets[i+1]
		}
	}
	return h.Buckets[len(h.Buckets)-1]
}

func cpuNs() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func main() {
	s := shapes[0]
	if len(os.Args) > 2 {
		fmt.Fprintln(os.Stderr, "usage: go-gcbench [full|quick|tiny]")
		os.Exit(2)
	}
	if len(os.Args) == 2 {
		found := false
		for _, c := range shapes {
			if c.name == os.Args[1] {
				s, found = c, true
			}
		}
		if !found {
			fmt.Fprintf(os.Stderr, "go-gcbench: unknown size %q (full, quick, tiny)\n", os.Args[1])
			os.Exit(2)
		}
	}
	fmt.Printf("GCBench (Boehm's binary trees) on %s, size %s, GOMAXPROCS %d, GOGC %s\n",
		runtime.Version(), s.name, runtime.GOMAXPROCS(0), os.Getenv("GOGC"))
	cycles := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(cycles)
	cycles0 := cycles[0].Value.Uint64()
	arm()

	t0, c0 := time.Now(), cpuNs()
	stretch := makeTree(s.stretch)
	if !checkTop(stretch, s.stretch) {
		fail("stretch tree malformed")
	}
	stretch = nil

	longLived := newNode(0)
	populate(s.longLived, longLived)
	array := make([]float64, s.arrayLen)
	allocs++
	for i := 0; i < s.arrayLen/2; i++ {
		array[i] = 1.0 / float64(i)
	}

	for d := s.min; d <= s.max; d += 2 {
		iters := 2 * treeSize(s.stretch) / treeSize(d)
		t := time.Now()
		for k := uint64(0); k < iters; k++ {
			temp := newNode(0)
			populate(d, temp)
			if !checkTop(temp, d) {
				fail("top-down tree malformed")
			}
		}
		topDown := time.Since(t)
		t = time.Now()
		for k := uint64(0); k < iters; k++ {
			if !checkTop(makeTree(d), d) {
				fail("bottom-up tree malformed")
			}
		}
		fmt.Printf(" Creating %d trees of depth %d: top down %.1f ms, bottom up %.1f ms\n", iters, d,
			topDown.Seconds()*1e3, time.Since(t).Seconds()*1e3)
	}
	total, cpu := time.Since(t0), cpuNs()-c0
	atomic.StoreInt32(&sampling, 0)

	if verifyTree(longLived, s.longLived) != treeSize(s.longLived) {
		fail("long-lived tree corrupted")
	}
	spot := 1000
	if s.arrayLen/4 < spot {
		spot = s.arrayLen / 4
	}
	if array[spot] != 1.0/float64(spot) {
		fail("long-lived array corrupted")
	}
	for i, v := range array {
		want := 0.0
		if i < s.arrayLen/2 {
			want = 1.0 / float64(i)
		}
		if v != want {
			fail("long-lived array corrupted")
		}
	}
	if h := heapInUse(); h > atomic.LoadUint64(&peakHeap) {
		atomic.StoreUint64(&peakHeap, h)
	}

	m := []metrics.Sample{{Name: "/gc/pauses:seconds"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(m)
	pauses := m[0].Value.Float64Histogram()
	var npauses uint64
	for _, c := range pauses.Counts {
		npauses += c
	}
	var rss syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &rss)
	// Go keeps no header, and 32 bytes is a size class of its own: a node takes its size.
	nodeBytes := unsafe.Sizeof(node{})
	fmt.Printf(" Completed in %.1f ms, %d cycles, %d pauses, max %.1f us\n", total.Seconds()*1e3,
		m[1].Value.Uint64()-cycles0, npauses, histQuantile(pauses, 1)*1e6)
	fmt.Printf("BENCH peer-gcbench runtime=go version=%s size=%s gomaxprocs=%d node_bytes=%d total_ms=%.1f cpu_ms=%.1f "+
		"pause_p99_us=%.1f pause_max_us=%.1f peak_heap_mib=%.2f cycles=%d peak_rss_mib=%.1f allocs=%d\n",
		runtime.Version(), s.name, runtime.GOMAXPROCS(0), nodeBytes, total.Seconds()*1e3, float64(cpu)/1e6,
		histQuantile(pauses, 0.99)*1e6, histQuantile(pauses, 1)*1e6, float64(atomic.LoadUint64(&peakHeap))/(1<<20),
		m[1].Value.Uint64()-cycles0, float64(rss.Maxrss)/1024, allocs)
}
