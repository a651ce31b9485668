/* fuzz_reloc — the instruction relocator on random byte windows.
 *
 * Part 1, sp_insn_relocate: decode the first instruction of a 15-byte
 * window, relocate it to a near and a far address.  It must refuse (with a
 * reason), or produce the same number of bytes that decode (Zydis, at the
 * new address) to the same mnemonic, length and operands, differing from
 * the original only in a RIP-relative displacement that addresses the same
 * absolute target.  A refusal for reach must be right: -ERANGE only when the
 * target is really out of rel32 reach, and success whenever it is in reach.
 *
 * Part 2, sp_reloc_window: plan a jmp window at the bytes (sp_jmp_plan reads
 * them in place, so the window lives in a real buffer), relocate it near and
 * far, and check the output instruction by instruction against what reloc.h
 * promises: copies as in part 1, jmp/jcc to the same targets (rel32 or the
 * absolute `jmp *0(%rip); .quad` form), a call as a push of the ORIGINAL
 * return address and a jmp to the callee, then a jump back to the first
 * byte after the window unless the flow ends; the map's offsets match.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <Zydis/Zydis.h>

#include "insn.h"
#include "jmpplan.h"
#include "reloc.h"

#define CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "fuzz_reloc: " __VA_ARGS__); \
	fputc('\n', stderr); abort(); } } while (0)

static ZydisDecoder dec;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	if (ZYAN_FAILED(ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64)))
		abort();
	return 0;
}

struct dinsn {
	ZydisDecodedInstruction in;
	ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
};

static int zdecode(const uint8_t *p, size_t n, struct dinsn *d)
{
	return ZYAN_SUCCESS(ZydisDecoderDecodeFull(&dec, p, n, &d->in, d->ops)) ? 0 : -1;
}

/* Absolute address of operand I (memory with a rip base, or a relative
 * immediate) as decoded at ADDR; 0 with *HAS false when it has none. */
static uint64_t abs_of(const struct dinsn *d, int i, uint64_t addr, bool *has)
{
	const ZydisDecodedOperand *op = &d->ops[i];
	ZyanU64 a = 0;
	*has = (op->type == ZYDIS_OPERAND_TYPE_MEMORY && op->mem.base == ZYDIS_REGISTER_RIP) ||
	       (op->type == ZYDIS_OPERAND_TYPE_IMMEDIATE && op->imm.is_relative);
	if (*has && ZYAN_FAILED(ZydisCalcAbsoluteAddress(&d->in, op, addr, &a)))
		*has = false;
	return a;
}

/* The copy at NEW (bytes OUT) does what ORIG at OLD did. */
static void check_copy(const struct sp_insn *orig, const uint8_t *out, size_t n, uint64_t new_addr,
		       const char *where)
{
	struct dinsn a, b;
	CHECK(zdecode(orig->bytes, orig->len, &a) == 0, "%s: original does not decode", where);
	CHECK(zdecode(out, n, &b) == 0, "%s: relocated bytes do not decode", where);
	CHECK(a.in.length == b.in.length && a.in.length == orig->len,
	      "%s: length %u became %u", where, a.in.length, b.in.length);
	CHECK(a.in.mnemonic == b.in.mnemonic, "%s: mnemonic %s became %s", where,
	      ZydisMnemonicGetString(a.in.mnemonic), ZydisMnemonicGetString(b.in.mnemonic));
	CHECK(a.in.operand_count == b.in.operand_count, "%s: operand count %u became %u", where,
	      a.in.operand_count, b.in.operand_count);
	for (int i = 0; i < a.in.operand_count; i++) {
		CHECK(a.ops[i].type == b.ops[i].type, "%s: operand %d type changed", where, i);
		bool ha, hb;
		uint64_t ta = abs_of(&a, i, orig->addr, &ha);
		uint64_t tb = abs_of(&b, i, new_addr, &hb);
		CHECK(ha == hb, "%s: operand %d relative-ness changed", where, i);
		CHECK(!ha || ta == tb, "%s: operand %d addressed 0x%llx, now 0x%llx", where, i,
		      (unsigned long long)ta, (unsigned long long)tb);
	}
	/* nothing but the displacement may change */
	for (size_t k = 0; k < orig->len; k++) {
		bool in_disp = orig->rip_relative && k >= orig->disp_offset &&
			       k < (size_t)orig->disp_offset + orig->disp_size;
		CHECK(in_disp || out[k] == orig->bytes[k], "%s: byte %zu changed", where, k);
	}
}

static void part1(const uint8_t *data, size_t size, uint64_t site)
{
	struct sp_insn in;
	uint8_t win[15] = { 0 };
	memcpy(win, data, size < 15 ? size : 15);
	if (sp_insn_decode(win, sizeof(win), site, &in) < 0)
		return;
	CHECK(in.len >= 1 && in.len <= 15, "length %u", in.len);

	/* near: within a few MiB either way; far: 3 GiB up */
	int32_t delta = (int32_t)((size > 16 ? data[15] : 0) | (size > 17 ? data[16] << 8 : 0)) << 6;
	uint64_t dests[2] = { site + (int64_t)delta - 0x200000, site + 0xc0000000ull };
	for (int k = 0; k < 2; k++) {
		uint8_t buf[32];
		const char *why = NULL;
		int n = sp_insn_relocate(&in, dests[k], buf, sizeof(buf), &why);
		const char *where = k ? "far" : "near";
		bool reach = true;
		if (in.rip_relative && in.disp_size == 4) {
			int32_t old;
			memcpy(&old, in.bytes + in.disp_offset, 4);
			uint64_t target = site + in.len + (int64_t)old;
			int64_t d = (int64_t)(target - (dests[k] + in.len));
			reach = d >= INT32_MIN && d <= INT32_MAX;
		}
		if (n < 0) {
			CHECK(why && why[0], "%s: refusal %d without a reason", where, n);
			CHECK(n == -ENOTSUP || n == -ERANGE, "%s: refusal %d", where, n);
			CHECK(n != -ERANGE || !reach, "%s: -ERANGE for a target in reach", where);
			CHECK(n != -ENOTSUP || !in.relocatable || in.disp_size != 4,
			      "%s: -ENOTSUP for a relocatable instruction: %s", where, why);
			continue;
		}
		CHECK(in.relocatable, "%s: relocated an instruction marked not relocatable", where);
		CHECK(reach, "%s: relocated a RIP-relative operand out of reach", where);
		CHECK(n == in.len, "%s: %d bytes for a %u-byte instruction", where, n, in.len);
		check_copy(&in, buf, (size_t)n, dests[k], where);
	}
	/* a short buffer is refused, never overrun (ASan watches) */
	if (in.relocatable && in.len > 1) {
		uint8_t *small = malloc(in.len - 1);
		const char *why = NULL;
		CHECK(sp_insn_relocate(&in, site + 64, small, in.len - 1, &why) < 0,
		      "relocation into a short buffer succeeded");
		free(small);
	}
}

/* ---- part 2: windows -------------------------------------------------- */

struct cursor {
	const uint8_t *buf;
	size_t pos, len;
	uint64_t dest;
	const char *where;
};

static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static int32_t rd32(const uint8_t *p) { int32_t v; memcpy(&v, p, 4); return v; }

/* A jump to TARGET at the cursor: e9 rel32, or ff 25 00000000 .quad. */
static void expect_jmp(struct cursor *c, uint64_t target, const char *what)
{
	const uint8_t *p = c->buf + c->pos;
	uint64_t here = c->dest + c->pos;
	if (c->pos + 5 <= c->len && p[0] == 0xe9) {
		CHECK(here + 5 + (int64_t)rd32(p + 1) == target, "%s: %s goes to 0x%llx, want 0x%llx",
		      c->where, what, (unsigned long long)(here + 5 + (int64_t)rd32(p + 1)),
		      (unsigned long long)target);
		c->pos += 5;
		return;
	}
	CHECK(c->pos + 14 <= c->len && p[0] == 0xff && p[1] == 0x25 && rd32(p + 2) == 0,
	      "%s: %s is neither jmp rel32 nor jmp *0(%%rip) (byte %02x at +%zu)", c->where, what,
	      c->pos < c->len ? p[0] : 0, c->pos);
	CHECK(rd64(p + 6) == target, "%s: absolute %s goes to 0x%llx, want 0x%llx", c->where, what,
	      (unsigned long long)rd64(p + 6), (unsigned long long)target);
	c->pos += 14;
}

static void check_window(const struct sp_window *w, const uint8_t *out, int n,
			 const struct sp_reloc_map *map, uint64_t dest, const char *where)
{
	struct cursor c = { out, 0, (size_t)n, dest, where };
	CHECK(map->n == w->n_insns, "%s: map has %u of %u instructions", where, map->n, w->n_insns);
	for (int i = 0; i < w->n_insns; i++) {
		const struct sp_insn *in = &w->insns[i];
		const uint8_t *p = out + c.pos;
		uint64_t here = dest + c.pos;
		CHECK(map->orig_off[i] == in->addr - w->site && map->new_off[i] == c.pos,
		      "%s: map[%d] = (%u, %u), want (%llu, %zu)", where, i, map->orig_off[i],
		      map->new_off[i], (unsigned long long)(in->addr - w->site), c.pos);
		switch (in->cls) {
		case SP_INSN_JMP_REL:
			expect_jmp(&c, in->target, "relocated jmp");
			break;
		case SP_INSN_JCC_REL:
			if (c.pos + 6 <= c.len && p[0] == 0x0f && p[1] == (0x80 | in->cond)) {
				CHECK(here + 6 + (int64_t)rd32(p + 2) == in->target,
				      "%s: relocated jcc goes elsewhere", where);
				c.pos += 6;
			} else {
				CHECK(c.pos + 2 <= c.len && p[0] == (0x70 | (in->cond ^ 1)) && p[1] == 14,
				      "%s: far jcc is not an inverted jcc over 14 bytes", where);
				c.pos += 2;
				expect_jmp(&c, in->target, "far jcc's jump");
			}
			break;
		case SP_INSN_CALL_REL: {
			static const uint8_t pre[] = { 0x48, 0x8d, 0x64, 0x24, 0xf8, 0xc7, 0x04, 0x24 };
			uint64_t ret = in->addr + in->len;
			CHECK(c.pos + 20 <= c.len && memcmp(p, pre, sizeof(pre)) == 0 &&
			      p[12] == 0xc7 && p[13] == 0x44 && p[14] == 0x24 && p[15] == 0x04,
			      "%s: relocated call is not lea/movl/movl", where);
			CHECK((uint32_t)rd32(p + 8) == (uint32_t)ret && (uint32_t)rd32(p + 16) == ret >> 32,
			      "%s: relocated call pushes the wrong return address", where);
			c.pos += 20;
			expect_jmp(&c, in->target, "relocated call's jump");
			break;
		}
		default:
			CHECK(c.pos + in->len <= c.len, "%s: copy of insn %d truncated", where, i);
			check_copy(in, p, in->len, here, where);
			c.pos += in->len;
		}
	}
	const struct sp_insn *last = &w->insns[w->n_insns - 1];
	if (!w->flow_ends && last->cls != SP_INSN_CALL_REL)
		expect_jmp(&c, w->site + w->len, "jump back");
	CHECK(c.pos == c.len, "%s: %zu bytes expected, %d written", where, c.pos, n);
}

static uint8_t text[64] __attribute__((aligned(64)));

static void part2(const uint8_t *data, size_t size)
{
	/* the window at the start of a "function" made of the input, padded
	 * with int3 (as linkers pad) */
	memset(text, 0xcc, sizeof(text));
	size_t fsize = size < 48 ? size : 48;
	memcpy(text, data, fsize);
	if (fsize == 0)
		return;
	uintptr_t site = (uintptr_t)text;
	struct sp_window w;
	const char *reason = NULL;
	if (sp_jmp_plan(site, fsize, site, sizeof(text), site + sizeof(text), &w, &reason) < 0) {
		CHECK(reason && reason[0], "sp_jmp_plan refused without a reason");
		return;
	}
	CHECK(w.n_insns >= 1 && w.n_insns <= SP_WINDOW_MAX, "window of %u insns", w.n_insns);
	CHECK(w.len >= SP_JMP_LEN || w.flow_ends, "window of %u bytes without a flow end", w.len);
	uint64_t dests[2] = { site + 0x1000, site + 0xc0000000ull };
	for (int k = 0; k < 2; k++) {
		uint8_t out[SP_RELOC_MAX];
		struct sp_reloc_map map;
		const char *why = NULL;
		int n = sp_reloc_window(&w, dests[k], out, sizeof(out), &map, &why);
		if (n < 0) {
			CHECK(why && why[0], "window: refusal %d without a reason", n);
			CHECK(n != -ENOBUFS, "window: SP_RELOC_MAX (%d) too small", SP_RELOC_MAX);
			continue;
		}
		CHECK(n <= SP_RELOC_MAX, "window: %d bytes", n);
		check_window(&w, out, n, &map, dests[k], k ? "window far" : "window near");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a site address with the input's choice of low bits, in the range
	 * shared objects live in */
	uint64_t site = 0x7f5a12340000ull + (size > 17 ? data[17] * 16 : 0);
	part1(data, size, site);
	part2(data, size);
	return 0;
}
