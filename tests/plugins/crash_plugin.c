/* crash_plugin — a handler that dereferences NULL (tests): the runtime must
 * disable its probe, report the fault, and let the program run on. */
#include <selfprobe.h>

SELFPROBE_PLUGIN;

__attribute__((visibility("default"))) int crash(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	return *(volatile int *)0;
}
