/* Tests for the one decision (decide.c) on code images: hand-laid functions
 * of this test program, read back from its own file as the CLI reads any
 * object (sp_analyze_open: the same index, btindex.c, as the runtime's).
 * Each case names the path and the reason (with the address it names).
 * The non-PIE table is in sp_nopie_table (tests/targets), a -no-pie
 * program.  None of these functions is ever called. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "analyze.h"
#include "asm_fn.h"
#include "hop.h"

__asm__(
	".pushsection .text\n"
	/* a switch whose case 0 starts at +2, inside the entry's window */
	FN(dt_sw_in)
	"	xor %eax,%eax\n"                      /* +0 */
	".Lin_c0: add $1,%eax\n"                  /* +2: case 0 */
	"	cmp $2,%edi\n"
	"	ja .Lin_def\n"
	"	mov %edi,%edi\n"
	"	lea .Lin_tab(%rip),%rdx\n"
	"	movslq (%rdx,%rdi,4),%rcx\n"
	"	add %rdx,%rcx\n"
	"	jmp *%rcx\n"
	".Lin_c1: mov $2,%eax\n"
	"	ret\n"
	".Lin_def: ret\n"
	END(dt_sw_in)

	/* the same switch with every case after the window */
	FN(dt_sw_out)
	"	cmp $2,%edi\n"                        /* +0: 3 bytes */
	"	ja .Lout_def\n"                       /* +3: 2 bytes */
	"	mov %edi,%edi\n"
	"	lea .Lout_tab(%rip),%rdx\n"
	"	movslq (%rdx,%rdi,4),%rcx\n"
	"	add %rdx,%rcx\n"
	"	jmp *%rcx\n"
	".Lout_c0: mov $1,%eax\n"
	"	ret\n"
	".Lout_c1: mov $2,%eax\n"
	"	ret\n"
	".Lout_def: xor %eax,%eax\n"
	"	ret\n"
	END(dt_sw_out)

	/* no bound on the index: the table's extent is its run of entries,
	 * and case 0 is at +2 */
	FN(dt_sw_unb)
	"	xor %eax,%eax\n"
	".Lunb_c0: add $1,%eax\n"                 /* +2 */
	"	mov %edi,%edi\n"
	"	lea .Lunb_tab(%rip),%rdx\n"
	"	movslq (%rdx,%rdi,4),%rcx\n"
	"	add %rdx,%rcx\n"
	"	jmp *%rcx\n"
	".Lunb_c1: ret\n"
	END(dt_sw_unb)

	/* a table read at 4 bytes past an address set before a branch: its
	 * bound and its extent cannot be established */
	FN(dt_sw_unknown)
	"	push %rbx\n"                          /* +0: 1 byte */
	"	lea .Lunk_tab(%rip),%rbx\n"           /* +1 */
	"	test %edi,%edi\n"
	"	je .Lunk_ret\n"
	"	movslq 4(%rbx,%rdi,4),%rcx\n"
	"	add %rbx,%rcx\n"
	"	jmp *%rcx\n"
	".Lunk_ret: pop %rbx\n"
	"	ret\n"
	END(dt_sw_unknown)

	/* the same unknown table, but the entry's window is one instruction */
	FN(dt_sw_unknown1)
	"	lea .Lunk_tab(%rip),%rbx\n"           /* +0: 7 bytes */
	"	test %edi,%edi\n"
	"	je .Lunk1_ret\n"
	"	movslq 4(%rbx,%rdi,4),%rcx\n"
	"	add %rbx,%rcx\n"
	"	jmp *%rcx\n"
	".Lunk1_ret: ret\n"
	END(dt_sw_unknown1)

	/* a label whose address is stored in data (R_X86_64_RELATIVE) */
	FN(dt_stored)
	"	xor %eax,%eax\n"
	".Lst_l: add $1,%eax\n"                   /* +2 */
	"	ret\n"
	END(dt_stored)

	/* a computed goto: the label's address taken with lea */
	FN(dt_cgoto)
	"	xor %eax,%eax\n"
	".Lcg_l: add $1,%eax\n"                   /* +2 */
	"	lea .Lcg_l(%rip),%rcx\n"
	"	cmp $3,%eax\n"
	"	jb .Lcg_go\n"
	"	ret\n"
	".Lcg_go: jmp *%rcx\n"
	END(dt_cgoto)

	/* gcc's computed-goto table under -fPIC: offsets from a label */
	FN(dt_cgtab)
	"	xor %eax,%eax\n"
	".Lcgt_l1: add $1,%eax\n"                 /* +2 */
	"	lea .Lcgt_base(%rip),%rdx\n"
	"	lea .Lcgt_tab(%rip),%rsi\n"
	"	movslq (%rsi,%rdi,4),%rcx\n"
	"	add %rdx,%rcx\n"
	"	jmp *%rcx\n"
	".Lcgt_base: ret\n"
	END(dt_cgtab)

	/* tail calls through the GOT, a register and a method table */
	FN(dt_got)
	"	sub $8,%rsp\n"
	"	add $8,%rsp\n"
	"	jmp *getpid@GOTPCREL(%rip)\n"
	END(dt_got)
	FN(dt_reg)
	"	mov 8(%rdi),%rax\n"
	"	add $1,%rsi\n"
	"	jmp *%rax\n"
	END(dt_reg)
	FN(dt_method)
	"	mov (%rdi),%rax\n"
	"	sub $1,%rsi\n"
	"	jmp *0x10(%rax)\n"
	END(dt_method)
	".popsection\n"

	".pushsection .rodata\n"
	".p2align 2\n"
	".Lin_tab: .long .Lin_c0-.Lin_tab, .Lin_c1-.Lin_tab, .Lin_def-.Lin_tab\n"
	".Lout_tab: .long .Lout_c0-.Lout_tab, .Lout_c1-.Lout_tab, .Lout_def-.Lout_tab\n"
	".long 0x7fffffff\n"
	".Lunb_tab: .long .Lunb_c0-.Lunb_tab, .Lunb_c1-.Lunb_tab\n"
	".long 0x7fffffff\n"
	".Lunk_tab: .long 0, .Lunk_ret-.Lunk_tab\n"
	".long 0x7fffffff\n"
	".Lcgt_tab: .long .Lcgt_l1-.Lcgt_base, 0\n"
	".long 0x7fffffff\n"
	".popsection\n"

	".pushsection .data.rel.local,\"aw\"\n"
	".p2align 3\n"
	"dt_stored_ptr: .quad .Lst_l\n"
	".popsection\n");

static struct sp_an_object *self;

static void close_self(void);

/* Tests that read another file replace the suite's object (Criterion runs
 * the suite's .init for them too). */
static void open_file(const char *path)
{
	if (self)
		close_self();
	char err[256];
	int rc = sp_analyze_open(path, &self, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s: %s", path, err);
}

static void open_self(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	cr_assert_gt(n, 0);
	exe[n] = 0;
	open_file(exe);
}

static void close_self(void)
{
	sp_analyze_close(self);
	self = NULL;
}

/* The verdict for NAME's entry: its path, its reason (NULL on jmp5), and
 * the ELF address of NAME + OFF for the reasons that name one. */
static const struct sp_an_site *decide(const char *name, struct sp_an_site *s)
{
	const struct sp_sym *sym = sp_elf_lookup(self->elf, name);
	cr_assert_not_null(sym, "no symbol %s", name);
	cr_assert_eq(sp_analyze_site(self, sym, sym->value, s), 0);
	return s;
}

static void expect_jmp5(const char *name)
{
	struct sp_an_site s;
	decide(name, &s);
	cr_expect_eq(s.path, SP_PATH_JMP5, "%s: path %s, reason %s", name, sp_path_name(s.path),
		     s.reason ? s.reason : "(none)");
	cr_expect_null(s.reason, "%s: %s", name, s.reason);
}

/* The 5-byte jmp refused, with a reason holding WHAT and naming NAME + OFF:
 * the int3 path, or a hop (hop.h: only the first instruction is displaced,
 * through padding after the function before), whose trail keeps the 5-byte
 * window's refusal. */
static void expect_int3(const char *name, int off, const char *what)
{
	struct sp_an_site s;
	decide(name, &s);
	const struct sp_sym *sym = sp_elf_lookup(self->elf, name);
	char addr[64];
	snprintf(addr, sizeof(addr), "%#lx", (unsigned long)(sym->value + (uint64_t)off));
	cr_expect(s.path == SP_PATH_INT3 || s.path == SP_PATH_HOP, "%s: path %s", name, sp_path_name(s.path));
	/* the trail says which check failed */
	const char *reason = s.path == SP_PATH_HOP ? NULL : s.reason;
	bool failed = false;
	for (int i = 0; i < s.n_checks; i++)
		if (s.checks[i].result == SP_CHECK_FAIL && (!reason || s.checks[i].detail == reason)) {
			failed = true;
			reason = reason ? reason : s.checks[i].detail;
		}
	cr_assert_not_null(reason, "%s: no reason", name);
	cr_expect(strstr(reason, what) != NULL, "%s: reason \"%s\", want \"%s\"", name, reason, what);
	if (off >= 0)
		cr_expect(strstr(reason, addr) != NULL, "%s: reason \"%s\" does not name %s", name,
			  reason, addr);
	cr_expect(failed, "%s: no failed check in the trail carries the reason", name);
}

TestSuite(decide, .init = open_self, .fini = close_self);

Test(decide, switch_case_inside_the_window)
{
	expect_int3("dt_sw_in", 2, "is a jump-table entry");
}

Test(decide, switch_cases_outside_the_window)
{
	expect_jmp5("dt_sw_out");
}

Test(decide, unbounded_table_read_to_its_extent)
{
	expect_int3("dt_sw_unb", 2, "is a jump-table entry");
}

Test(decide, unknown_table)
{
	/* the reason names the indirect jmp (+0x14 in dt_sw_unknown) */
	expect_int3("dt_sw_unknown", -1, "a jump table whose address is not found before the jump");
	struct sp_an_site s;
	decide("dt_sw_unknown", &s);
	const struct sp_sym *sym = sp_elf_lookup(self->elf, "dt_sw_unknown");
	char addr[64];
	snprintf(addr, sizeof(addr), "indirect jump at %#lx", (unsigned long)(sym->value + 0x14));
	cr_expect(strstr(s.reason, addr) != NULL, "\"%s\" does not say \"%s\"", s.reason, addr);
	/* a one-instruction window: nothing lands inside an instruction */
	expect_jmp5("dt_sw_unknown1");
}

Test(decide, stored_label_address)
{
	expect_int3("dt_stored", 2, "is a relocated pointer (R_X86_64_RELATIVE)");
}

Test(decide, computed_goto)
{
	expect_int3("dt_cgoto", 2, "is a RIP-relative lea target");
	expect_int3("dt_cgtab", 2, "is a jump-table entry");
}

Test(decide, tail_calls_and_method_tables)
{
	expect_jmp5("dt_got");
	expect_jmp5("dt_reg");
	expect_jmp5("dt_method");
}

/* The facts of NAME's entry decided live as a Go function's site whose
 * runtime may have goroutines (RUNNING) or not; *T: its text. */
static struct sp_site_facts go_facts(const char *name, bool running, const struct sp_an_text **t)
{
	struct sp_an_site s;
	decide(name, &s);   /* builds the object's index */
	const struct sp_sym *sym = sp_elf_lookup(self->elf, name);
	cr_assert_not_null(sym, "no symbol %s", name);
	size_t avail;
	cr_assert_not_null(sp_analyze_text(self, sym->value, &avail));
	*t = NULL;
	for (int i = 0; i < self->n_text; i++)
		if (sym->value >= self->text[i].vaddr && sym->value < self->text[i].vaddr + self->text[i].size)
			*t = &self->text[i];
	cr_assert_not_null(*t);
	return (struct sp_site_facts){
		.site = sym->value, .code = (*t)->bytes, .code_lo = (*t)->vaddr, .code_len = (*t)->size,
		.avail = avail, .func = sym->value, .func_size = sym->size,
		.limit = sym->value + sym->size, .idx = self->idx,
		.landing_pads = self->elf->has_except_table, .go_site = true,
		.live = true, .go_running = running,
	};
}

/* NAME's entry decided live as a Go function's site (go_facts): the verdict. */
static void decide_go(const char *name, bool running, struct sp_verdict *v)
{
	const struct sp_an_text *t;
	struct sp_site_facts f = go_facts(name, running, &t);
	sp_decide(&f, v);
}

/* Go's asynchronous preemption parks a goroutine at any instruction, its
 * pc on its stack: once goroutines may exist, a window of several
 * instructions is refused (a hop's one-instruction window may do); before,
 * and for a one-instruction window, the 5-byte jmp stands. */
Test(decide, go_preemption)
{
	struct sp_verdict v;
	decide_go("dt_sw_out", false, &v);   /* cmp (3 bytes), ja: two instructions */
	cr_expect_eq(v.path, SP_PATH_JMP5, "before the Go runtime starts: %s", v.reason);
	cr_expect_gt(v.w.n_insns, 1);
	decide_go("dt_sw_out", true, &v);
	cr_expect_eq(v.path, SP_PATH_INT3, "goroutines may exist: %s", sp_path_name(v.path));
	cr_expect(v.reason && strstr(v.reason, "asynchronous preemption"), "reason: %s", v.reason);
	cr_expect_eq(v.block, SP_BLOCK_TARGET, "a hop (its first instruction alone) may do");
	decide_go("dt_sw_unknown1", true, &v);   /* lea (7 bytes): one instruction */
	cr_expect_eq(v.path, SP_PATH_JMP5, "one-instruction window: %s", v.reason);
}

/* A carrier (hop.h) is a 5-byte jmp over a run of several instructions:
 * a goroutine parked inside that run by asynchronous preemption would
 * resume inside its jmp.  sp_carrier's cr_short (too short for a 5-byte
 * jmp, no padding within reach) takes a hop through cr_host's carrier
 * before the Go runtime starts; once goroutines may exist, no carrier: int3,
 * the reason saying why, for a cgo C function's site of the Go object too. */
Test(decide, go_preemption_no_carrier, .init = NULL, .fini = close_self)
{
	open_file(TEST_BIN_DIR "/../tests/sp_carrier");
	/* 0: before the runtime starts; 1: goroutines may exist; 2: the same,
	 * the site a cgo C function's (its carrier may be in Go code) */
	for (int running = 0; running < 3; running++) {
		const struct sp_an_text *t;
		struct sp_site_facts f = go_facts("cr_short", running, &t);
		f.go_site = running < 2;
		struct sp_verdict v;
		sp_decide(&f, &v);
		cr_assert(sp_hop_candidate(&v), "cr_short: %s", v.reason);
		struct sp_hop_facts hf = { .code = t->bytes, .lo = t->vaddr, .len = t->size,
					   .elf = self->elf, .bias = 0 };
		bool hop = sp_hop_decide(&f, &hf, &v);
		if (!running) {
			cr_expect(hop && v.hop_carrier, "before the Go runtime starts: a hop through a "
				  "carrier (%s, carrier %#lx)", v.reason, (unsigned long)v.hop_carrier);
			continue;
		}
		cr_expect(!hop, "goroutines may exist (go_site %d): %s", f.go_site, sp_path_name(v.path));
		cr_expect(v.reason && strstr(v.reason, "no carrier while goroutines may run"),
			  "go_site %d: reason: %s", f.go_site, v.reason);
	}
}

Test(decide, non_pie_absolute_table, .init = NULL, .fini = close_self)
{
	open_file(TEST_BIN_DIR "/../tests/sp_nopie_table");
	cr_assert_eq(self->elf->e_type, 2, "sp_nopie_table is not ET_EXEC");
	expect_int3("nt_sw_in", 2, "is a jump-table entry");
	expect_jmp5("nt_sw_out");
}

/* The compilers' own switch tables are recognised with their bounds, not
 * left to the word scan or unknown (e2e_decide.py runs them). */
static void expect_tables(const char *lib)
{
	open_file(lib);
	struct sp_an_site s;
	decide("sw_dense", &s);
	cr_assert_not_null(self->idx);
	struct sp_btindex_stats st;
	sp_btindex_stats(self->idx, &st);
	cr_expect_geq(st.tables, 3, "%s: %zu tables proven, want sw_dense's, sw_offset's, sw_loop's", lib,
		      st.tables);
	cr_expect_eq(st.unknown_tables, 0, "%s: %zu unknown tables", lib, st.unknown_tables);
	cr_expect_eq(s.path, SP_PATH_JMP5, "%s: sw_dense: %s", lib, s.reason);
}

Test(decide, gcc_switch_tables, .init = NULL, .fini = close_self)
{
	expect_tables(TEST_BIN_DIR "/../tests/libsp_switch_gcc.so");
}

Test(decide, clang_switch_tables, .init = NULL, .fini = close_self)
{
	if (access(TEST_BIN_DIR "/../tests/libsp_switch_clang.so", R_OK) != 0) {
		cr_log_warn("SKIP: clang is not installed: no libsp_switch_clang.so");
		return;
	}
	expect_tables(TEST_BIN_DIR "/../tests/libsp_switch_clang.so");
}
