/* usdt_strings — a test plugin: records USDT probes whose arguments are
 * (const char *, const char *, int), like Python's
 * python:function__entry(filename, funcname, lineno), and writes them out at
 * exit, so a test can check the strings the program passed.
 *
 *   UPROBE_SPEC='usdt:python:function__entry=libsp_usdt_strings.so:on_entry;
 *                usdt:python:function__return=libsp_usdt_strings.so:on_return'
 *   UPROBE_PLUGIN_ARGS=/tmp/out.txt      (required: where the records go)
 *
 * Output, one line per hit in the order the hits took their slots (program
 * order within a thread):  "E|R TID LINENO FILENAME FUNCNAME"; a string
 * argument that could not be read is "?".  A final "dropped N" line counts
 * hits that found the ring full.
 *
 * The handlers run in signal context (int3 path) and in many threads at
 * once: they copy into a preallocated ring with one atomic slot claim, no
 * malloc, no stdio, no locks.
 */
#include <selfprobe.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

SELFPROBE_PLUGIN;

#define RING 65536
#define STR 120

struct rec {
	_Atomic int ready;       /* written completely */
	char tag;
	int tid;
	int64_t line;
	char file[STR], func[STR];
};

static struct rec ring[RING];
static atomic_ulong next_slot, dropped;
static FILE *out;

int selfprobe_plugin_init(const char *args)
{
	if (!args || !*args)
		return -1;
	out = fopen(args, "w");
	return out ? 0 : -1;
}

/* The NUL-terminated string at the address in argument N, truncated. */
static void copy_str(struct selfprobe_ctx *ctx, int n, char *dst)
{
	int64_t v;
	const char *s;
	dst[0] = '?';
	dst[1] = '\0';
	if (selfprobe_usdt_arg(ctx, n, &v) != 0 || v == 0)
		return;
	s = (const char *)(uintptr_t)v;
	int i = 0;
	for (; i < STR - 1 && s[i]; i++)
		dst[i] = s[i] == ' ' || s[i] == '\n' ? '_' : s[i];   /* keep one record a line */
	dst[i] = '\0';
}

static int record(struct selfprobe_ctx *ctx, char tag)
{
	unsigned long k = atomic_fetch_add_explicit(&next_slot, 1, memory_order_relaxed);
	if (k >= RING) {
		atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
		return 0;
	}
	struct rec *r = &ring[k];
	r->tag = tag;
	r->tid = (int)syscall(SYS_gettid);
	copy_str(ctx, 0, r->file);
	copy_str(ctx, 1, r->func);
	if (selfprobe_usdt_arg(ctx, 2, &r->line) != 0)
		r->line = INT64_MIN;
	atomic_store_explicit(&r->ready, 1, memory_order_release);
	return 0;
}

__attribute__((visibility("default"))) int on_entry(struct selfprobe_ctx *ctx, void *data)
{
	(void)data;
	return record(ctx, 'E');
}

__attribute__((visibility("default"))) int on_return(struct selfprobe_ctx *ctx, void *data)
{
	(void)data;
	return record(ctx, 'R');
}

void selfprobe_plugin_fini(void)
{
	unsigned long n = atomic_load(&next_slot);
	if (n > RING)
		n = RING;
	for (unsigned long k = 0; k < n; k++) {
		struct rec *r = &ring[k];
		if (!atomic_load_explicit(&r->ready, memory_order_acquire))
			continue;   /* a thread still inside its handler at exit */
		fprintf(out, "%c %d %lld %s %s\n", r->tag, r->tid, (long long)r->line, r->file, r->func);
	}
	fprintf(out, "dropped %lu\n", atomic_load(&dropped));
	fclose(out);
}
