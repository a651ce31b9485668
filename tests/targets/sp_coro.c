/* sp_coro — probed functions returning across ucontext switches (makecontext
 * / swapcontext): a coroutine on its own stack suspends inside probed
 * frames while the main stack calls and returns. */
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>
static ucontext_t main_ctx, co_ctx;
static int steps;
__attribute__((noinline)) int leafp(int x) { __asm__ volatile(""); return x + 1; }
__attribute__((noinline)) void co_work(int depth) {
	if (depth) { co_work(depth - 1); leafp(depth); return; }
	for (int i = 0; i < 5; i++) { steps += leafp(i); swapcontext(&co_ctx, &main_ctx); }
}
static void co_entry(void) { co_work(3); }
__attribute__((noinline)) int driver(void) {
	int s = 0;
	for (int i = 0; i < 6; i++) { s += leafp(i); swapcontext(&main_ctx, &co_ctx); }
	return s;
}
int main(void) {
	char *stack = malloc(1 << 16);
	getcontext(&co_ctx);
	co_ctx.uc_stack.ss_sp = stack; co_ctx.uc_stack.ss_size = 1 << 16; co_ctx.uc_link = &main_ctx;
	makecontext(&co_ctx, co_entry, 0);
	int s = driver();
	printf("s %d steps %d\n", s, steps);
	return 0;
}
