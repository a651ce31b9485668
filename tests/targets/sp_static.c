/* sp_static — a statically linked program: LD_PRELOAD cannot reach it, and
 * `selfprobe run` must say so (e2e_quiet.py). */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
	char *p = malloc(16);
	puts(p ? "static program" : "no memory");
	free(p);
	return 3;
}
