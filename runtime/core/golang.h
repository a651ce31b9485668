/* golang — what probing a Go program needs to know about Go (the analysis;
 * the hot path is golang_ret.h, the exit report golang_exit.h).
 *
 * A Go object is recognised by its `.go.buildinfo` section or its Go
 * build-id note (owner "Go", type 4, `.note.go.buildid`).  In one:
 *
 *  - Entry probes go after the function's stack check (`cmp 0x10(%r14),%rsp`
 *    or `lea -N(%rsp),%r12; cmp 0x10(%r14),%r12`, then `jbe morestack`).
 *    A function whose goroutine stack is too small calls morestack, which
 *    copies the stack and jumps back to the entry: a probe at the entry
 *    would count that call twice.  Past the check the goroutine stack also
 *    has room for the trampoline's frame (the check guarantees more than
 *    the 928 bytes of Go's StackGuard below the stack pointer).
 *  - Return probes never swap a return address: Go's tracebacks, stack
 *    copying and garbage collector read every return address on a
 *    goroutine stack and abort the program on a foreign one ("unexpected
 *    return pc").  They are refused with that reason.
 *  - Some runtime functions are entered in ways no symbol shows
 *    (runtime.goexit is "returned into" at +1) or switch stacks: refused.
 *  - Go leaves by a raw exit_group in runtime.exit, never libc's exit: the
 *    report is written from an internal probe there, on a private stack.
 *  - Go's register ABI (ABIInternal, amd64): integer arguments in RAX, RBX,
 *    RCX, RDI, RSI, R8, R9, R10, R11; selfprobe_go_arg reads them.
 */
#ifndef SP_GOLANG_H
#define SP_GOLANG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "selfprobe.h"

/* Whether the ELF file at PATH was built by the Go toolchain (cached per
 * path; a file that cannot be read is not Go). */
bool sp_go_object(const char *path);
/* ... and linked with runtime/cgo (whose threads are the C library's). */
bool sp_go_cgo_object(const char *path);

/* Whether goroutines may exist in the Go object at PATH loaded at BIAS:
 * its runtime.allglen (every goroutine ever made, the main one first) is
 * not 0, or unknown (no such symbol).  Before the runtime starts (the
 * preload's attach, a library's load before its constructors) none can be
 * parked inside a probe's jmp window by asynchronous preemption (decide.h);
 * from then on one may be, at any instruction.  Once true, always true. */
bool sp_go_running(const char *path, uintptr_t bias);

/* The length of the Go stack-check prologue at the start of CODE (SIZE
 * bytes, a function's pristine code), 0 when it has none.  It is at most
 * SP_GO_CHECK_MAX bytes long (lea disp32 8, cmp 4, jbe rel32 6). */
#define SP_GO_CHECK_MAX 32
size_t sp_go_stack_check_len(const uint8_t *code, size_t size);

struct sp_func_extent;

/* For a site at FUNC+OFFSET of the function at FUNC (SIZE bytes) of the
 * object at PATH: in a Go object, FN's Go facts (the trampoline's C stack,
 * no jmp in a function without a stack check) and, for an entry
 * (OFFSET 0), the length of the stack check to skip; else 0. */
uint64_t sp_go_site(const char *path, uintptr_t func, uint64_t size, uint64_t offset,
		    struct sp_func_extent *fn);

/* Why a probe on the Go function SYMBOL of PATH must not be placed (RETURN: a
 * return probe on the function FN describes), or NULL. */
const char *sp_go_refusal(const char *path, const char *symbol, bool wants_return,
			  const struct sp_func_extent *fn);

/* Where each return of a Go function is seen: its epilogue's first
 * instruction (mov D(%rsp),%rbp before add $ADJ,%rsp; ret), or the RET
 * itself (AT_RET, ADJ 0). */
struct sp_go_ret {
	uintptr_t site;
	uint32_t adj;        /* rsp at the site + ADJ = rsp at the RET */
	bool at_ret;
};

/* The return sites of the Go function FN describes (decoded whole, from
 * its pristine code), into *OUT (malloc'ed): the count, or -1 with *WHY (a
 * jump leaves the function, an instruction that does not decode, no RET,
 * assembly: g is not in r14, an indirect jump other than a jump table
 * (jtable.h: Go's `lea T(%rip),%rB; jmp *(%rB,%rI,8)` or gcc's forms) whose
 * bound is established and whose every entry, read from memory, is an
 * instruction of the function: those entries are branch targets too). */
long sp_go_ret_sites(const char *symbol, const struct sp_func_extent *fn, struct sp_go_ret **out,
		     const char **why);

#endif
