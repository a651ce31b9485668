/* sp_coexist — a loop calling one function until SIGUSR1, for the test of a
 * kernel uprobe placed and removed on a site we patched (e2e_coexist.py).
 *
 *   sp_coexist FUNC      FUNC, by its first instruction:
 *                          push   push %rbp (one byte)
 *                          r15    push %r15 (two: REX)
 *                          test   test %rdi,%rdi (three: REX)
 *                          endbr  endbr64 (four: F3 prefix)
 *                          long   movabs (ten: longer than our jmp)
 *
 * Prints "ready", calls FUNC(i) until SIGUSR1, then prints "result ok" when
 * every return value was right (else "result wrong") and "calls N", its own
 * count of the calls.  Exit status 0. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

long cx_push(long), cx_r15(long), cx_test(long), cx_endbr(long), cx_long(long);
/* both return 3x+1; written in assembly so that the first instruction is
 * what the test needs whatever the compiler */
__asm__(".text\n"
	".globl cx_push\n.type cx_push,@function\ncx_push:\n"
	"  push %rbp\n  mov %rsp,%rbp\n  lea 1(%rdi,%rdi,2),%rax\n  pop %rbp\n  ret\n"
	".size cx_push,.-cx_push\n"
	".globl cx_r15\n.type cx_r15,@function\ncx_r15:\n"
	"  push %r15\n  lea 1(%rdi,%rdi,2),%rax\n  pop %r15\n  ret\n"
	".size cx_r15,.-cx_r15\n"
	".globl cx_test\n.type cx_test,@function\ncx_test:\n"
	"  test %rdi,%rdi\n  lea 1(%rdi,%rdi,2),%rax\n  ret\n"
	".size cx_test,.-cx_test\n"
	".globl cx_endbr\n.type cx_endbr,@function\ncx_endbr:\n"
	"  endbr64\n  push %rbp\n  mov %rsp,%rbp\n  lea 1(%rdi,%rdi,2),%rax\n  pop %rbp\n  ret\n"
	".size cx_endbr,.-cx_endbr\n"
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
	static const struct { const char *name; long (*f)(long); } funcs[] = {
		{ "push", cx_push }, { "r15", cx_r15 }, { "test", cx_test },
		{ "endbr", cx_endbr }, { "long", cx_long },
	};
	long (*f)(long) = NULL;
	for (size_t i = 0; argc == 2 && i < sizeof(funcs) / sizeof(funcs[0]); i++)
		if (strcmp(argv[1], funcs[i].name) == 0)
			f = funcs[i].f;
	if (!f) {
		fprintf(stderr, "usage: sp_coexist push|r15|test|endbr|long\n");
		return 2;
	}
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
