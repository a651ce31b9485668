/* golang_exit — the report of a Go program that ends by its own raw
 * exit_group (never libc's exit). */
#ifndef SP_GOLANG_EXIT_H
#define SP_GOLANG_EXIT_H

/* When the main program is Go, an internal probe on its runtime.exit that
 * runs REPORT on a private stack before the exit_group.  0, 1 when the
 * program is not Go, or -errno. */
int sp_go_exit_hook_install(void (*report)(void));

#endif
