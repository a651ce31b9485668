/* fuzz_jtable — the jump-table finder (jtable.h) on arbitrary straight
 * lines of code.
 *
 * The input is code at a fixed address: its instructions are decoded one
 * after the other (up to 24, the sweep's straight line) and handed to
 * sp_jtable_find as the line before the last one, which is what the sweep
 * does at an indirect jmp.  A first byte picks how many of them (so short
 * lines ending anywhere are tried too).  Properties: no crash or UB (ASan,
 * UBSan), the kind is one of the enum's, an UNKNOWN table says why, a
 * table found has its address and a bound that is in range and comes from
 * an instruction of the line (bound_from is one of their addresses).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "insn.h"
#include "jtable.h"

#define CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "fuzz_jtable: " __VA_ARGS__); \
	fputc('\n', stderr); abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	int want = 1 + data[0] % 24;
	const uint8_t *code = data + 1;
	size_t len = size - 1;
	const uintptr_t base = 0x400000 + (uintptr_t)(data[0] >> 5) * 0x10000000ull;
	struct sp_jt_insn ins[24];
	int n = 0;
	size_t off = 0;
	while (n < want && off < len) {
		struct sp_insn in;
		size_t avail = len - off < 15 ? len - off : 15;
		if (sp_insn_decode(code + off, avail, base + off, &in) != 0 || in.len == 0)
			break;
		ins[n++] = (struct sp_jt_insn){ .addr = base + off, .code = code + off, .avail = avail };
		off += in.len;
	}
	if (n == 0)
		return 0;
	struct sp_jtable jt;
	memset(&jt, 0xa5, sizeof(jt));   /* every field must be written */
	sp_jtable_find(ins, n, &jt);
	CHECK(jt.kind >= SP_JT_NONE && jt.kind <= SP_JT_UNKNOWN, "kind %d", (int)jt.kind);
	if (jt.kind == SP_JT_UNKNOWN)
		CHECK(jt.why && jt.why[0], "an unknown table without a reason");
	if (jt.kind == SP_JT_REL32 || jt.kind == SP_JT_ABS64 || jt.kind == SP_JT_REL32_ELSEWHERE) {
		CHECK(jt.count >= 0 && jt.count <= 65537, "count %ld", jt.count);
		if (jt.count) {
			bool from_line = false;
			for (int i = 0; i < n; i++)
				from_line |= ins[i].addr == jt.bound_from;
			CHECK(from_line, "bound from %#lx, not an instruction of the line",
			      (unsigned long)jt.bound_from);
		}
	}
	/* the same line handed in as single instructions: each is a line */
	for (int i = 0; i < n; i++) {
		struct sp_jtable one;
		sp_jtable_find(&ins[i], 1, &one);
		CHECK(one.kind >= SP_JT_NONE && one.kind <= SP_JT_UNKNOWN, "kind %d", (int)one.kind);
	}
	return 0;
}
