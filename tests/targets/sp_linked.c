/* sp_linked — linked against libselfprobe.so: its constructor reads
 * UPROBE_SPEC as the preload's does.  Prints its real and effective uids,
 * whether it is under secure execution, and calls a probe-able function. */
#include <stdio.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "selfprobe.h"

__attribute__((noinline, used)) int linked_work(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 1;
}

int main(void)
{
	int sum = 0;
	for (int i = 0; i < 100; i++)
		sum += linked_work(i);
	/* reference the API so the link is real */
	printf("uid=%d euid=%d secure=%lu sum=%d api=%s\n", (int)getuid(), (int)geteuid(),
	       getauxval(AT_SECURE), sum, selfprobe_set_mode("auto") == 0 ? "ok" : "bad");
	return 0;
}
