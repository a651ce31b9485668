/* malloc_hist — an example libselfprobe plugin: a histogram of the sizes
 * passed to malloc, printed at exit.  Copy it to start your own.
 *
 *   UPROBE_SPEC='uprobe:libc:malloc=./libsp_malloc_hist.so:on_malloc' ls
 *
 * A handler runs in the probed thread, possibly in a signal handler (int3
 * path) and possibly in many threads at once: keep it short, lock-free and
 * async-signal-safe (no malloc, no stdio) — here, atomic adds.  Print in
 * selfprobe_plugin_fini, which runs at exit after the report.
 */
#include <selfprobe.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

SELFPROBE_PLUGIN;

static _Atomic unsigned long buckets[65];
static FILE *out;

int selfprobe_plugin_init(const char *args)
{
	/* UPROBE_PLUGIN_ARGS: where to print (default stderr) */
	out = args && *args ? fopen(args, "w") : stderr;
	return out ? 0 : -1;
}

__attribute__((visibility("default"))) int on_malloc(struct selfprobe_ctx *ctx, void *data)
{
	(void)data;
	unsigned long size = selfprobe_arg(ctx, 0);
	int b = size ? 64 - __builtin_clzl(size) : 0;   /* size in [2^(b-1), 2^b) */
	atomic_fetch_add_explicit(&buckets[b], 1, memory_order_relaxed);
	return 0;
}

void selfprobe_plugin_fini(void)
{
	fprintf(out, "@malloc_size_bytes:\n");
	for (int b = 0; b < 65; b++) {
		unsigned long n = atomic_load(&buckets[b]);
		if (n)
			fprintf(out, "[%lu, %lu) %lu\n", b ? 1ul << (b - 1) : 0ul, b < 64 ? 1ul << b : ~0ul, n);
	}
	fflush(out);
	if (out != stderr)
		fclose(out);
}
