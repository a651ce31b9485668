/* sp_coexist — a loop calling one function until SIGUSR1, for the test of a
 * kernel uprobe placed and removed on a site we patched (e2e_coexist.py).
 *
 *   sp_coexist FUNC [api]
 *
 * FUNC, by its first instruction:
 *   push   push %rbp (one byte)
 *   r15    push %r15 (two: REX)
 *   test   test %rdi,%rdi (three: REX)
 *   xor    xor %eax,%eax (two: a plain opcode, no prefix)
 *   endbr  endbr64 (four: F3 prefix)
 *   sub    sub $8,%rsp (four: REX)
 *   long   movabs (ten: longer than our jmp)
 *   nop5   nopl 0(%rax,%rax) (five: the kernel optimizes a uprobe there)
 *
 * Every function returns 3x+1.  FUNC(x, &scratch, 0, 7) is called: endbr and
 * sub clear %rcx in their second instruction and add it to the result, xor
 * leaves scratch alone, so an instruction torn by our jmp's offset bytes
 * (a kernel uprobe resuming inside them, or its removal) that runs instead
 * of faulting shows as a wrong value (or a crash).
 *
 * api: the probe is attached from here (selfprobe_attach, with a counting
 * handler) instead of by UPROBE_SPEC: SIGUSR2 detaches it ("detached" is
 * printed), a second SIGUSR2 attaches it again ("attached", or "attach
 * failed").  SIGHUP attaches a probe on cx_push, which is not called (an
 * attach batch), and prints "batch N", N the handler's count so far.
 *
 * Prints "ready", calls FUNC until SIGUSR1, then prints "result ok" when
 * every return value was right (else "result wrong") and "calls N", its own
 * count of the calls (api: "handler N" too).  Exit status 0. */
#include <dlfcn.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef long fn_t(long, long *, long, long);
fn_t cx_push, cx_r15, cx_test, cx_xor, cx_endbr, cx_sub, cx_long, cx_nop5;
/* written in assembly so that the first instruction is what the test needs
 * whatever the compiler */
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
	".globl cx_xor\n.type cx_xor,@function\ncx_xor:\n"
	"  xor %eax,%eax\n  lea 1(%rdi,%rdi,2),%rax\n  ret\n"
	".size cx_xor,.-cx_xor\n"
	".globl cx_endbr\n.type cx_endbr,@function\ncx_endbr:\n"
	"  endbr64\n  xor %ecx,%ecx\n  lea 1(%rdi,%rdi,2),%rax\n  add %rcx,%rax\n  ret\n"
	".size cx_endbr,.-cx_endbr\n"
	".globl cx_sub\n.type cx_sub,@function\ncx_sub:\n"
	"  sub $8,%rsp\n  xor %ecx,%ecx\n  lea 1(%rdi,%rdi,2),%rax\n  add %rcx,%rax\n  add $8,%rsp\n  ret\n"
	".size cx_sub,.-cx_sub\n"
	".globl cx_long\n.type cx_long,@function\ncx_long:\n"
	"  movabs $1,%rax\n  lea 1(%rdi,%rdi,2),%rax\n  ret\n"
	".size cx_long,.-cx_long\n"
	".globl cx_nop5\n.type cx_nop5,@function\ncx_nop5:\n"
	"  .byte 0x0f, 0x1f, 0x44, 0x00, 0x00\n  lea 1(%rdi,%rdi,2),%rax\n  ret\n"
	".size cx_nop5,.-cx_nop5\n");

static volatile sig_atomic_t stop, toggles, batches;

static void on_usr1(int sig)
{
	(void)sig;
	stop = 1;
}

static void on_usr2(int sig)
{
	(void)sig;
	toggles++;
}

static void on_hup(int sig)
{
	(void)sig;
	batches++;
}

static unsigned long handled;

static int count(void *ctx, void *data)
{
	(void)ctx;
	(void)data;
	__atomic_add_fetch(&handled, 1, __ATOMIC_RELAXED);
	return 0;
}

/* the API, from the preloaded runtime (not linked: the program runs
 * unprobed too) */
typedef void *attach_fn(const char *, int (*)(void *, void *), void *);
typedef int detach_fn(void *);

int main(int argc, char **argv)
{
	static const struct { const char *name; fn_t *f; } funcs[] = {
		{ "push", cx_push }, { "r15", cx_r15 }, { "test", cx_test }, { "xor", cx_xor },
		{ "endbr", cx_endbr }, { "sub", cx_sub }, { "long", cx_long }, { "nop5", cx_nop5 },
	};
	fn_t *f = NULL;
	for (size_t i = 0; (argc == 2 || argc == 3) && i < sizeof(funcs) / sizeof(funcs[0]); i++)
		if (strcmp(argv[1], funcs[i].name) == 0)
			f = funcs[i].f;
	int api = argc == 3 && strcmp(argv[2], "api") == 0;
	if (!f || (argc == 3 && !api)) {
		fprintf(stderr, "usage: sp_coexist push|r15|test|xor|endbr|sub|long|nop5 [api]\n");
		return 2;
	}
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	attach_fn *attach = api ? (attach_fn *)dlsym(RTLD_DEFAULT, "selfprobe_attach") : NULL;
	detach_fn *detach = api ? (detach_fn *)dlsym(RTLD_DEFAULT, "selfprobe_detach") : NULL;
	char spec[PATH_MAX + 64], self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[n > 0 ? n : 0] = 0;
	snprintf(spec, sizeof(spec), "uprobe:%s:cx_%s", self, argv[1]);
	void *link = attach ? attach(spec, count, NULL) : NULL;
	if (api && !link) {
		fprintf(stderr, "sp_coexist: cannot attach %s (is the runtime preloaded?)\n", spec);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	long calls = 0, wrong = 0, scratch = 42;
	int seen = 0, seen_batches = 0;
	while (!stop) {
		for (long i = 0; i < 1000; i++, calls++)
			wrong += f(i, &scratch, 0, 7) != 3 * i + 1;
		if (seen != toggles) {
			seen++;
			if (link) {
				detach(link);
				link = NULL;
				printf("detached\n");
			} else {
				link = attach(spec, count, NULL);
				printf(link ? "attached\n" : "attach failed\n");
			}
			fflush(stdout);
		}
		if (seen_batches != batches && attach) {
			seen_batches++;
			char other[PATH_MAX + 64];
			snprintf(other, sizeof(other), "uprobe:%s:cx_push", self);
			attach(other, count, NULL);
			printf("batch %lu\n", __atomic_load_n(&handled, __ATOMIC_RELAXED));
			fflush(stdout);
		}
	}
	wrong += scratch != 42;
	printf("result %s\ncalls %ld\n", wrong ? "wrong" : "ok", calls);
	if (api)
		printf("handler %lu\n", handled);
	return 0;
}
