/* count_plugin — the smallest useful plugin, built out of tree against an
 * installed libselfprobe (tests/e2e/e2e_cli.py install): counts the hits of the
 * probe it is attached to and the largest first argument, and prints both
 * at exit to the file named by UPROBE_PLUGIN_ARGS (stderr without one). */
#include <selfprobe.h>
#include <stdatomic.h>
#include <stdio.h>

SELFPROBE_PLUGIN;

static _Atomic unsigned long hits, largest;
static FILE *out;

int selfprobe_plugin_init(const char *args)
{
	out = args && *args ? fopen(args, "w") : stderr;
	return out ? 0 : -1;
}

int on_hit(struct selfprobe_ctx *ctx, void *data)
{
	(void)data;
	unsigned long a = selfprobe_arg(ctx, 0), old = atomic_load(&largest);
	atomic_fetch_add_explicit(&hits, 1, memory_order_relaxed);
	while (a > old && !atomic_compare_exchange_weak(&largest, &old, a))
		;
	return 0;
}

void selfprobe_plugin_fini(void)
{
	fprintf(out, "count_plugin: hits=%lu largest=%lu\n", atomic_load(&hits), atomic_load(&largest));
	fflush(out);
	if (out != stderr)
		fclose(out);
}
