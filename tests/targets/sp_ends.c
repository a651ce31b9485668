/* sp_ends — a program that ends in every way a report could be lost.
 *
 *   sp_ends MODE N      calls ends_work() N times, then:
 *     exit     returns from main               sigkill  kill(getpid(), SIGKILL)
 *     _exit    _exit(3)                         segv     a NULL dereference
 *     abort    abort()                          fork     forks; the child calls
 *                                                        ends_work N more times
 *                                                        and _exits, then exit
 * Prints "work N" (the calls it made) before ending.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int sink;

__attribute__((noinline, used)) void ends_work(int i)
{
	sink += i;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "exit";
	int n = argc > 2 ? atoi(argv[2]) : 1000;
	for (int i = 0; i < n; i++)
		ends_work(i);
	printf("work %d\n", n);
	fflush(stdout);
	if (!strcmp(mode, "_exit"))
		_exit(3);
	if (!strcmp(mode, "sigkill"))
		kill(getpid(), SIGKILL);
	if (!strcmp(mode, "segv"))
		return *(volatile int *)0;
	if (!strcmp(mode, "abort"))
		abort();
	if (!strcmp(mode, "fork")) {
		pid_t p = fork();
		if (p == 0) {
			for (int i = 0; i < n; i++)
				ends_work(i);
			_exit(0);
		}
		waitpid(p, NULL, 0);
	}
	return 0;
}
