/* Plugins that must be refused cleanly (tests).  Built three times:
 *   BAD_NO_ABI     no SELFPROBE_PLUGIN mark
 *   BAD_ABI        a mark with another ABI version
 *   BAD_INIT       selfprobe_plugin_init fails
 * and without any of them: a good plugin whose handler counts calls and
 * records the first argument, with init/fini that write marker files. */
#include <selfprobe.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#if defined(BAD_ABI)
__attribute__((visibility("default"))) const int selfprobe_plugin_abi = SELFPROBE_ABI_VERSION + 100;
#elif !defined(BAD_NO_ABI)
SELFPROBE_PLUGIN;
#endif

static _Atomic long calls;
static const char *marker;

int selfprobe_plugin_init(const char *args)
{
#ifdef BAD_INIT
	(void)args;
	return 7;
#else
	marker = args;
	return 0;
#endif
}

__attribute__((visibility("default"))) int on_hit(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	atomic_fetch_add(&calls, 1);
	return 0;
}

/* A handler that calls libc: a user's handler's calls are the process's
 * own and are counted (README, Counting); e2e_owncalls checks it. */
__attribute__((visibility("default"))) int on_hit_calls_getppid(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	atomic_fetch_add(&calls, 1);
	return getppid() < 0;
}

void selfprobe_plugin_fini(void)
{
	if (!marker)
		return;
	FILE *f = fopen(marker, "w");
	if (f) {
		fprintf(f, "calls %ld\n", atomic_load(&calls));
		fclose(f);
	}
}
