/* usdt — SystemTap SDT notes (sys/sdt.h) and their argument specs.
 *
 * Pure: reads ELF files and strings, evaluates against a register set; no
 * process state.  Fuzzable.
 *
 * A note (.note.stapsdt, type 3, owner "stapsdt") gives per site: the pc
 * (an ELF virtual address, to be corrected by the difference between the
 * runtime and the note's .stapsdt.base when the object was prelinked or
 * moved), the .stapsdt.base address, the semaphore address (0: none),
 * provider, name and an argument string like "-4@%edi 8@-8(%rbp) 4@$5".
 */
#ifndef SP_USDT_H
#define SP_USDT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "selfprobe.h"

#define SP_USDT_MAX_ARGS 12

enum sp_usdt_arg_kind {
	SP_USDT_CONST,        /* 4@$5 */
	SP_USDT_REG,          /* -4@%eax */
	SP_USDT_MEM,          /* 8@-8(%rbp), 8@(%rax,%rbx,8), 8@16(%rip) */
	SP_USDT_ABS,          /* 8@sym(%rip), 8@sym+16(%rip): the symbol resolved
			       * at parse time to an absolute address (value) */
	SP_USDT_XMM,          /* 8f@%xmm0: the low 4 or 8 bytes of a vector
			       * register (reg: 0..15), read from the saved
			       * vector state */
};

struct sp_usdt_arg {
	enum sp_usdt_arg_kind kind;
	int8_t size;          /* 1, 2, 4, 8; negative: signed */
	bool is_float;        /* "4f@", "8f@": a float or a double (its bits);
			       * sys/sdt.h writes the f for floating types */
	int64_t value;        /* SP_USDT_CONST */
	int reg;              /* base register: enum sp_gpr (insn.h), SP_RIP_BASE for rip, -1 none */
	uint8_t reg_shift;    /* sub-register: 8 for %ah %bh %ch %dh, else 0 */
	uint8_t reg_bytes;    /* width named by the register (for REG), e.g. 4 for %eax */
	int index;            /* MEM index register or -1 */
	uint8_t scale;        /* MEM scale 1, 2, 4, 8 */
	int64_t disp;         /* MEM displacement */
};

struct sp_usdt_note {
	char *provider, *name, *args;  /* owned */
	uint64_t pc;                  /* ELF vaddr of the site, already corrected for .stapsdt.base */
	uint64_t base;                /* the note's .stapsdt.base */
	uint64_t semaphore;           /* ELF vaddr (corrected the same way), 0: none */
};

struct sp_usdt_notes {
	struct sp_usdt_note *v;
	size_t n;
};

/* Read every stapsdt note of the ELF file at PATH.  0, or -errno with a
 * message in ERR naming the file and what is wrong (a corrupt note is an
 * error, not a crash; a file without notes is 0 with n == 0). */
int sp_usdt_read(const char *path, struct sp_usdt_notes *out, char *err, size_t errlen);
void sp_usdt_free(struct sp_usdt_notes *notes);

/* Parse an argument string.  Returns the count (0..12), or -EINVAL with a
 * message in ERR.  RIP-relative symbol operands (8@sym(%rip)): SYMBOL
 * resolution is the caller's; LOOKUP is called with the symbol name and
 * returns 0 and its runtime address, or -ENOENT (then the argument is an
 * error).  LOOKUP may be NULL (such arguments are then an error). */
typedef int (*sp_usdt_lookup_fn)(const char *symbol, void *ctx, uint64_t *addr);
int sp_usdt_parse_args(const char *spec, struct sp_usdt_arg *args, int max,
		       sp_usdt_lookup_fn lookup, void *ctx, char *err, size_t errlen);

/* Evaluate ARG against REGS, reading memory for MEM/ABS arguments as the
 * program itself would; the value sign- or zero-extended by its size (a
 * float's bits zero-extended).  RIP_NEXT: the address after the probe's
 * instruction (the base of a %rip-relative operand).  FPSTATE: the
 * interrupted vector state in FXSAVE's legacy layout (XMM0-15 at byte
 * 160), or NULL (an XMM argument is then 0).  Signal-safe. */
int64_t sp_usdt_eval(const struct sp_usdt_arg *arg, const struct selfprobe_regs *regs, uint64_t rip_next,
		     const void *fpstate);
/* A float argument's value (ARG->is_float) from what sp_usdt_eval gave. */
double sp_usdt_float(const struct sp_usdt_arg *arg, int64_t bits);

#endif
