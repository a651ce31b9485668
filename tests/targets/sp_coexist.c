/* sp_coexist — a loop calling one function until SIGUSR1, for the test of a
 * kernel uprobe placed and removed on a site we patched (e2e_coexist.py).
 *
 *   sp_coexist FUNC      FUNC: push (first instruction one byte: push %rbp)
 *                              long (first instruction ten bytes: REX movabs)
 *
 * Prints "ready", calls FUNC(i) until SIGUSR1, then prints "result ok" when
 * every return value was right (else "result wrong") and "calls N", its own
 * count of the calls.  Exit status 0. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

long cx_push(long), cx_long(long);
/* both return 3x+1; written in assembly so that the first instruction is
 * what the test needs whatever the compiler */
__asm__(".text\n"
	".globl cx_push\n.type cx_push,@function\ncx_push:\n"
	"  push %rbp\n  mov %rsp,%rbp\n  lea 1(%rdi,%rdi,2),%rax\n  pop %rbp\n  ret\n"
	".size cx_push,.-cx_push\n"
	".globl cx_long\n.type cx_long,@function\ncx_long:\n"
	"  movabs $1,%rax\n  lea 1(%rdi,%rdi,2),%rax\n  ret\n"
	".size cx_long,.-cx_long\n");

static volatile sig_atomic_t stop;

static void on_usr1(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	if (argc != 2 || (strcmp(argv[1], "push") && strcmp(argv[1], "long"))) {
		fprintf(stderr, "usage: sp_coexist push|long\n");
		return 2;
	}
	long (*f)(long) = strcmp(argv[1], "push") == 0 ? cx_push : cx_long;
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigaction(SIGUSR1, &sa, NULL);
	printf("ready\n");
	fflush(stdout);
	long calls = 0, wrong = 0;
	while (!stop)
		for (long i = 0; i < 1000; i++, calls++)
			wrong += f(i) != 3 * i + 1;
	printf("result %s\ncalls %ld\n", wrong ? "wrong" : "ok", calls);
	return 0;
}
