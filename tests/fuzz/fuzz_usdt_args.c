/* fuzz_usdt_args — USDT argument strings ("-4@%edi 8@-8(%rbp) 4@$5").
 *
 * Parse arbitrary bytes, then evaluate what parsed against a register set.
 * sp_usdt_eval reads memory for MEM/ABS arguments as the probed program
 * would, so here CONST and REG are always evaluated, and a MEM argument
 * only when the address it computes (every register and the rip base point
 * at the middle of a local buffer) lies inside that buffer.  Properties:
 *   - the count is in 0..max, fields in range (size 1/2/4/8 signed or not,
 *     scale 1/2/4/8, registers valid);
 *   - a value is the register/constant/memory extended by the size: it
 *     fits in |size| bytes (zero-extended), or sign-extends from them.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "insn.h"
#include "usdt.h"

#define CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "fuzz_usdt_args: " __VA_ARGS__); \
	fputc('\n', stderr); abort(); } } while (0)

static int lookup(const char *sym, void *ctx, uint64_t *addr)
{
	(void)ctx;
	if (strcmp(sym, "g_var") == 0 || strcmp(sym, "sym") == 0) {
		*addr = 0x1000;   /* never dereferenced: ABS is not evaluated */
		return 0;
	}
	return -ENOENT;
}

static int valid_reg(int r)
{
	return (r >= SP_R15 && r <= SP_RDI) || r == SP_RSP;
}

/* Does V fit SIZE (the note's byte count, negative: signed)? */
static int fits(int64_t v, int size)
{
	int bits = (size < 0 ? -size : size) * 8;
	if (bits == 64)
		return 1;
	if (size > 0)
		return (uint64_t)v >> bits == 0;
	int64_t lim = INT64_C(1) << (bits - 1);
	return v >= -lim && v < lim;
}

static uint8_t mem[4096] __attribute__((aligned(16)));

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	struct sp_usdt_arg args[SP_USDT_MAX_ARGS];
	char err[256];
	int max = size ? 1 + data[0] % SP_USDT_MAX_ARGS : SP_USDT_MAX_ARGS;
	memset(args, 0xa5, sizeof(args));
	err[0] = '\0';
	int n = sp_usdt_parse_args(text, args, max, lookup, NULL, err, sizeof(err));
	/* the same string once more with the full array and no lookup */
	struct sp_usdt_arg args2[SP_USDT_MAX_ARGS];
	char err2[8];   /* a short buffer: messages must be truncated, not overflow */
	err2[0] = '\0';   /* a parse that succeeds writes no message */
	int n2 = sp_usdt_parse_args(text, args2, SP_USDT_MAX_ARGS, NULL, NULL, err2, sizeof(err2));
	CHECK(n2 < 0 || n2 <= SP_USDT_MAX_ARGS, "count %d", n2);
	CHECK(strnlen(err2, sizeof(err2)) < sizeof(err2), "error message not terminated");
	free(text);
	if (n < 0) {
		CHECK(n == -EINVAL || n == -ENOMEM || n == -E2BIG || n == -ENOENT,
		      "unexpected error %d", n);
		CHECK(err[0], "error %d without a message", n);
		return 0;
	}
	CHECK(n <= max, "%d args parsed into an array of %d", n, max);

	/* every register, and the rip base, points at the buffer's middle */
	struct selfprobe_regs regs;
	uint64_t mid = (uint64_t)(uintptr_t)(mem + sizeof(mem) / 2);
	for (size_t i = 0; i < sizeof(mem); i++)
		mem[i] = (uint8_t)(i * 131 + 7);
	uint64_t *r = (uint64_t *)&regs;
	for (size_t i = 0; i < sizeof(regs) / sizeof(uint64_t); i++)
		r[i] = mid;

	for (int i = 0; i < n; i++) {
		const struct sp_usdt_arg *a = &args[i];
		int sz = a->size < 0 ? -a->size : a->size;
		CHECK(sz == 1 || sz == 2 || sz == 4 || sz == 8, "arg %d: size %d", i, a->size);
		CHECK(!a->is_float || a->size == 4 || a->size == 8, "arg %d: float size %d", i, a->size);
		switch (a->kind) {
		case SP_USDT_CONST:
			break;
		case SP_USDT_REG:
			CHECK(valid_reg(a->reg), "arg %d: register %d", i, a->reg);
			CHECK(a->reg_bytes == 1 || a->reg_bytes == 2 || a->reg_bytes == 4 ||
			      a->reg_bytes == 8, "arg %d: reg_bytes %d", i, a->reg_bytes);
			CHECK(a->reg_shift == 0 || (a->reg_shift == 8 && a->reg_bytes == 1),
			      "arg %d: reg_shift %d", i, a->reg_shift);
			break;
		case SP_USDT_MEM:
			CHECK(a->reg == -1 || a->reg == SP_RIP_BASE || valid_reg(a->reg),
			      "arg %d: base %d", i, a->reg);
			CHECK(a->index == -1 || valid_reg(a->index), "arg %d: index %d", i, a->index);
			CHECK(a->index == -1 || a->scale == 1 || a->scale == 2 || a->scale == 4 ||
			      a->scale == 8, "arg %d: scale %d", i, a->scale);
			break;
		case SP_USDT_ABS:
			break;
		case SP_USDT_XMM:
			CHECK(a->reg >= 0 && a->reg <= 15 && a->is_float, "arg %d: xmm %d", i, a->reg);
			break;
		default:
			CHECK(0, "arg %d: kind %d", i, (int)a->kind);
		}

		/* a vector state with known XMM values: XMMn's low bytes = n */
		static uint8_t fpstate[512] __attribute__((aligned(16)));
		for (int x = 0; x < 16; x++)
			memset(fpstate + 160 + 16 * x, x, 16);
		if (a->kind == SP_USDT_XMM) {
			int64_t x = sp_usdt_eval(a, &regs, mid, fpstate);
			uint64_t want = a->size == 4 ? 0x01010101u * (uint32_t)a->reg
						     : 0x0101010101010101ull * (uint64_t)a->reg;
			CHECK((uint64_t)x == want, "arg %d: xmm%d read %llx", i, a->reg, (unsigned long long)x);
			CHECK(sp_usdt_eval(a, &regs, mid, NULL) == 0, "arg %d: no vector state, not 0", i);
			continue;
		}
		int64_t v;
		if (a->kind == SP_USDT_CONST || a->kind == SP_USDT_REG) {
			v = sp_usdt_eval(a, &regs, mid, fpstate);
		} else if (a->kind == SP_USDT_MEM) {
			uint64_t addr = a->reg == -1 ? 0 : mid;
			if (a->index >= 0)
				addr += mid * a->scale;
			addr += (uint64_t)a->disp;
			if (addr < (uint64_t)(uintptr_t)mem ||
			    addr + 8 > (uint64_t)(uintptr_t)(mem + sizeof(mem)))
				continue;   /* would read outside the buffer: not here */
			v = sp_usdt_eval(a, &regs, mid, fpstate);
			uint64_t raw = 0;
			memcpy(&raw, (const void *)(uintptr_t)addr, sz);
			CHECK(((uint64_t)v & (sz == 8 ? ~UINT64_C(0) : (UINT64_C(1) << sz * 8) - 1)) == raw,
			      "arg %d: memory value 0x%llx, eval 0x%llx", i,
			      (unsigned long long)raw, (unsigned long long)v);
		} else {
			continue;
		}
		CHECK(fits(v, a->size), "arg %d (size %d): value 0x%llx does not fit", i, a->size,
		      (unsigned long long)v);
	}
	return 0;
}
