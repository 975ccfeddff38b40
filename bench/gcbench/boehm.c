/*
 * GCBench (Boehm's binary-tree benchmark) over the Boehm-Demers-Weiser collector, written for
 * tricolor's `cargo xtask compare`. It does what tricolor's host GCBench (gc/src/gcbench.rs) does,
 * step for step, so the two can be compared on one machine:
 *   1. build and drop a stretch tree of depth STRETCH;
 *   2. build a long-lived tree of depth LONG_LIVED top down, and an array of ARRAY_LEN doubles
 *      (the first half set to 1/i), both live to the end;
 *   3. for depths MIN..MAX step 2, build num_iters(d) trees top down (Populate) and as many
 *      bottom up (MakeTree), dropping each at once;
 *   4. check the array and walk the long-lived tree (node count, payload), excluded from the time.
 * A node holds two pointers and two 64-bit payload words (height and a hash of it), as tricolor's.
 *
 * Figures come from the collector itself: collection events (GC_set_on_collection_event) time
 * each collection (START..END, during which the allocating thread, the only mutator, is blocked)
 * and each world stop (PRE_STOP_WORLD..POST_START_WORLD); GC_get_heap_size gives the heap after
 * every collection and at the end; GC_get_parallel the marker threads.
 *
 * Build: cc -O2 -o boehm-gcbench boehm.c -lgc      Run: boehm-gcbench [full|quick|tiny]
 * Prints a summary and one line `BENCH peer-gcbench runtime=boehm key=value ...`; exits 1 if a
 * check fails.
 */
#define GC_THREADS
#include <gc/gc.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

struct shape {
    const char *name;
    int stretch, long_lived, array_len, min_depth, max_depth;
};

/* The same sizes as tricolor's `gcbench::Size`. */
static const struct shape SHAPES[] = {
    {"full", 18, 16, 500000, 4, 16},
    {"quick", 14, 12, 50000, 4, 10},
    {"tiny", 8, 6, 1000, 4, 6},
};

typedef struct node {
    struct node *left, *right;
    uint64_t i, j;
} node;

static uint64_t payload_j(uint64_t i) { return (i * 0x9E3779B97F4A7C15ull) ^ 0x676362656E636821ull; }

static uint64_t tree_size(int depth) { return (1ull << (depth + 1)) - 1; }

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static uint64_t cpu_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* Collection events. Called with the allocation lock held, so plain statics suffice. */
#define MAX_EVENTS 100000
static int recording;
static uint64_t gc_start, stop_start, gc_total_ns, gc_max_ns, collections;
static uint64_t pauses[MAX_EVENTS];
static size_t npauses;
static size_t peak_heap;

static void on_event(GC_EventType e) {
    if (!recording)
        return;
    uint64_t t = now_ns();
    switch (e) {
    case GC_EVENT_START:
        gc_start = t;
        break;
    case GC_EVENT_END: {
        uint64_t d = t - gc_start;
        gc_total_ns += d;
        if (d > gc_max_ns)
            gc_max_ns = d;
        collections++;
        size_t h = GC_get_heap_size();
        if (h > peak_heap)
            peak_heap = h;
        break;
    }
    case GC_EVENT_PRE_STOP_WORLD:
        stop_start = t;
        break;
    case GC_EVENT_POST_START_WORLD:
        if (npauses < MAX_EVENTS)
            pauses[npauses++] = t - stop_start;
        break;
    default:
        break;
    }
}

static uint64_t allocs;

static node *new_node(uint64_t height) {
    node *n = GC_MALLOC(sizeof(node));
    if (!n) {
        fprintf(stderr, "boehm-gcbench: out of memory\n");
        exit(1);
    }
    allocs++;
    n->i = height;
    n->j = payload_j(height);
    return n;
}

/* Boehm's Populate: give `n` children down to `depth` levels, top down. */
static void populate(int depth, node *n) {
    n->i = (uint64_t)depth;
    n->j = payload_j((uint64_t)depth);
    if (depth <= 0)
        return;
    n->left = new_node(0);
    n->right = new_node(0);
    populate(depth - 1, n->left);
    populate(depth - 1, n->right);
}

/* Boehm's MakeTree: a tree of `depth` built bottom up. */
static node *make_tree(int depth) {
    if (depth <= 0)
        return new_node(0);
    node *left = make_tree(depth - 1);
    node *right = make_tree(depth - 1);
    node *n = new_node((uint64_t)depth);
    n->left = left;
    n->right = right;
    return n;
}

static int check_top(const node *n, int depth) {
    if (n->i != (uint64_t)depth || n->j != payload_j((uint64_t)depth))
        return 0;
    if (depth == 0)
        return !n->left && !n->right;
    return n->left && n->right && n->left->i == (uint64_t)(depth - 1) && n->right->i == (uint64_t)(depth - 1);
}

/* Node count of a complete, intact tree, or 0. */
static uint64_t verify_tree(const node *n, int depth) {
    if (!check_top(n, depth))
        return 0;
    if (depth == 0)
        return 1;
    uint64_t l = verify_tree(n->left, depth - 1), r = verify_tree(n->right, depth - 1);
    return l && r ? l + r + 1 : 0;
}

static void fail(const char *what) {
    fprintf(stderr, "boehm-gcbench: FAILED: %s\n", what);
    exit(1);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest rank, as xtask's `quantile`. */
static uint64_t quantile(const uint64_t *sorted, size_t n, double q) {
    if (n == 0)
        return 0;
    size_t rank = (size_t)(q * (double)n + 0.999999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

static long peak_rss_kib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

int main(int argc, char **argv) {
    const struct shape *s = &SHAPES[0];
    if (argc > 2) {
        fprintf(stderr, "usage: boehm-gcbench [full|quick|tiny]\n");
        return 2;
    }
    if (argc == 2) {
        s = NULL;
        for (size_t k = 0; k < sizeof SHAPES / sizeof SHAPES[0]; k++)
            if (strcmp(argv[1], SHAPES[k].name) == 0)
                s = &SHAPES[k];
        if (!s) {
            fprintf(stderr, "boehm-gcbench: unknown size '%s' (full, quick, tiny)\n", argv[1]);
            return 2;
        }
    }
    GC_INIT();
    /* Parallel marking starts only with a second thread or by request: request it, so Boehm
     * marks on every CPU it may use (GC_MARKERS=n overrides the count). */
    GC_start_mark_threads();
    GC_set_on_collection_event(on_event);
    unsigned v = GC_get_version();
    printf("GCBench (Boehm's binary trees) on Boehm GC %u.%u.%u, size %s, %d marker thread(s), "
           "interior pointers %s\n",
           v >> 16, (v >> 8) & 0xff, v & 0xff, s->name, GC_get_parallel() + 1,
           GC_get_all_interior_pointers() ? "on" : "off");

    recording = 1;
    uint64_t t0 = now_ns(), c0 = cpu_ns();
    node *stretch = make_tree(s->stretch);
    if (!check_top(stretch, s->stretch))
        fail("stretch tree malformed");
    size_t node_bytes = GC_size(stretch);
    stretch = NULL;

    node *long_lived = new_node(0);
    populate(s->long_lived, long_lived);
    double *array = GC_MALLOC_ATOMIC(sizeof(double) * (size_t)s->array_len);
    if (!array)
        fail("out of memory for the array");
    allocs++;
    memset(array, 0, sizeof(double) * (size_t)s->array_len);
    for (int i = 0; i < s->array_len / 2; i++)
        array[i] = 1.0 / i;

    for (int d = s->min_depth; d <= s->max_depth; d += 2) {
        uint64_t iters = 2 * tree_size(s->stretch) / tree_size(d);
        uint64_t t = now_ns();
        for (uint64_t k = 0; k < iters; k++) {
            node *temp = new_node(0);
            populate(d, temp);
            if (!check_top(temp, d))
                fail("top-down tree malformed");
        }
        uint64_t top_down = now_ns() - t;
        t = now_ns();
        for (uint64_t k = 0; k < iters; k++) {
            node *temp = make_tree(d);
            if (!check_top(temp, d))
                fail("bottom-up tree malformed");
        }
        printf(" Creating %llu trees of depth %d: top down %.1f ms, bottom up %.1f ms\n", (unsigned long long)iters, d,
               top_down / 1e6, (now_ns() - t) / 1e6);
    }
    uint64_t total = now_ns() - t0, cpu = cpu_ns() - c0;
    recording = 0;

    uint64_t verified = verify_tree(long_lived, s->long_lived);
    if (verified != tree_size(s->long_lived))
        fail("long-lived tree corrupted");
    int spot = 1000 < s->array_len / 4 ? 1000 : s->array_len / 4;
    if (array[spot] != 1.0 / spot)
        fail("long-lived array corrupted");
    for (int i = 0; i < s->array_len; i++)
        if (array[i] != (i < s->array_len / 2 ? 1.0 / i : 0.0))
            fail("long-lived array corrupted");
    if (GC_get_heap_size() > peak_heap)
        peak_heap = GC_get_heap_size();

    qsort(pauses, npauses, sizeof pauses[0], cmp_u64);
    printf(" Completed in %.1f ms, %llu collections (%.1f ms), %zu world stops, max %.1f us\n", total / 1e6,
           (unsigned long long)collections, gc_total_ns / 1e6, npauses, quantile(pauses, npauses, 1.0) / 1e3);
    printf("BENCH peer-gcbench runtime=boehm version=%u.%u.%u size=%s markers=%d node_bytes=%zu total_ms=%.1f "
           "cpu_ms=%.1f gc_ms=%.1f blocked_max_us=%.1f pause_p99_us=%.1f pause_max_us=%.1f peak_heap_mib=%.2f "
           "cycles=%llu peak_rss_mib=%.1f allocs=%llu\n",
           v >> 16, (v >> 8) & 0xff, v & 0xff, s->name, GC_get_parallel() + 1, node_bytes, total / 1e6, cpu / 1e6,
           gc_total_ns / 1e6, gc_max_ns / 1e3, quantile(pauses, npauses, 0.99) / 1e3,
           quantile(pauses, npauses, 1.0) / 1e3, peak_heap / 1048576.0, (unsigned long long)collections,
           peak_rss_kib() / 1024.0, (unsigned long long)allocs);
    return 0;
}
