/* coexist — see coexist.h.  The signal path calls no libc function. */
#include "coexist.h"
#include "maps.h"
#include "procread.h"
#include "memread.h"
#include <sys/uio.h>
#include <unistd.h>
#include "hop.h"
#include "jmpplan.h"
#include "patch.h"
#include "log.h"
#include "probe.h"
#include "rawsys.h"
#include "tstate.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>

bool sp_coexist_traps(uint8_t b)
{
	switch (b) {
	/* invalid in 64-bit mode (#UD, SIGILL at the byte), on Intel and AMD */
	case 0x06: case 0x07: case 0x0e: case 0x16: case 0x17: case 0x1e: case 0x1f:
	case 0x27: case 0x2f: case 0x37: case 0x3f: case 0x60: case 0x61: case 0x9a:
	case 0xce: case 0xd4: case 0xd5: case 0xea:
	/* int3 (SIGTRAP just after it); hlt (#GP in user mode, SIGSEGV at it).
	 * Not cli/sti/in/out: iopl(3) makes them run. */
	case 0xcc: case 0xf4:
		return true;
	}
	return false;
}

/* Legacy prefixes and REX: a torn first instruction (the file's first
 * byte restored before our offset bytes) that starts with one decodes our
 * first offset byte as its opcode. */
static bool is_prefix(uint8_t b)
{
	return (b >= 0x40 && b <= 0x4f) || b == 0x26 || b == 0x2e || b == 0x36 || b == 0x3e ||
	       b == 0x64 || b == 0x65 || b == 0x66 || b == 0x67 || b == 0xf0 || b == 0xf2 || b == 0xf3;
}

/* ---- trampoline placement (see coexist.h) ---- */

/* For each byte value: the distance up (UP) and down (DOWN) to the
 * nearest value acceptable as site+1's byte (SITE1) and as a resume byte
 * (ANY); 255: none in that direction within the byte.  Built once. */
enum { SITE1, ANY };
static uint8_t up[2][256], down[2][256];
static _Atomic bool tables_ready;

static bool ok_as(int which, unsigned b)
{
	return which == SITE1 ? b != 0xcc && sp_coexist_traps((uint8_t)b) : sp_coexist_traps((uint8_t)b);
}

static void build_tables(void)
{
	for (int w = 0; w < 2; w++)
		for (unsigned b = 0; b < 256; b++) {
			up[w][b] = down[w][b] = 255;
			for (unsigned d = 0; b + d < 256; d++)
				if (ok_as(w, b + d)) {
					up[w][b] = (uint8_t)d;
					break;
				}
			for (unsigned d = 0; d <= b; d++)
				if (ok_as(w, b - d)) {
					down[w][b] = (uint8_t)d;
					break;
				}
		}
	atomic_store(&tables_ready, true);
}

/* Move R to the nearest value (DIR +1 up, -1 down) whose byte I is
 * acceptable as WHICH, the bytes below it cleared (up) or set (down) when
 * byte I changes.  False: it is already acceptable. */
static bool fix_byte(int64_t *r, unsigned i, int which, int dir)
{
	unsigned sh = 8 * i;
	unsigned b = (unsigned)((uint64_t)*r >> sh) & 0xff;
	unsigned d = dir > 0 ? up[which][b] : down[which][b];
	if (d == 0)
		return false;
	int64_t unit = (int64_t)1 << sh, low = unit - 1;
	if (d == 255)   /* none left in this byte: into the next (or previous) */
		*r = dir > 0 ? (*r | ((unit << 8) - 1)) + 1 : (*r & ~((unit << 8) - 1)) - 1;
	else
		*r = dir > 0 ? (*r & ~low) + (int64_t)d * unit : (*r | low) - (int64_t)d * unit;
	return true;
}

/* R: the rel32 the entry gives (entry - (site + 5)).  DIR +1: the least
 * acceptable R >= R; -1: the greatest <= R. */
static int64_t fit_rel(int64_t r, unsigned len, int dir)
{
	if (!atomic_load_explicit(&tables_ready, memory_order_acquire))
		build_tables();
	/* a first instruction of 2 to 4 bytes: its resume byte too.  For 4
	 * (endbr64, sub $8,%rsp) that is the offset's highest byte: the
	 * trampoline goes 96 MiB or more away (0x06/0x07 up, 0xf4 down).  The
	 * other choice, an offset byte 0x00 or 0xff there, decodes with the
	 * file's next bytes as an add or inc/dec/call/jmp/push that may run
	 * (memory written, a register changed) before anything faults. */
	unsigned hi = len >= 2 && len <= 4 ? len - 1 : 0;
	for (;;) {
		if (r > INT32_MAX || r < INT32_MIN)
			return dir > 0 ? INT64_MAX : INT64_MIN;
		if (hi && fix_byte(&r, hi, ANY, dir))
			continue;
		if (fix_byte(&r, 0, SITE1, dir))
			continue;
		return r;
	}
}

uintptr_t sp_coexist_next_entry(uintptr_t at, const void *ctx)
{
	const struct sp_coexist_fit *f = ctx;
	int64_t r = fit_rel((int64_t)(at - (f->site + SP_JMP_LEN)), f->len, 1);
	return r == INT64_MAX ? UINTPTR_MAX : f->site + SP_JMP_LEN + (uintptr_t)r;
}

uintptr_t sp_coexist_prev_entry(uintptr_t at, const void *ctx)
{
	const struct sp_coexist_fit *f = ctx;
	int64_t r = fit_rel((int64_t)(at - (f->site + SP_JMP_LEN)), f->len, -1);
	return r == INT64_MIN ? 0 : f->site + SP_JMP_LEN + (uintptr_t)r;
}

static size_t patch_len(const struct sp_site *s)
{
	return s->hop ? SP_HOP_LEN : SP_JMP_LEN;
}

static uint8_t jmp_opcode(const struct sp_site *s)
{
	return s->hop ? 0xeb : 0xe9;
}

/* Where the relocated window resumes after the instruction at site+OFF
 * (0: OFF is not an instruction boundary of the window). */
static uintptr_t reloc_after(const struct sp_site *s, size_t off)
{
	for (int i = 0; i < s->tramp.map.n; i++)
		if (s->tramp.map.orig_off[i] == off)
			return s->tramp.reloc + s->tramp.map.new_off[i];
	return 0;
}

/* A hit whose first instruction someone else ran: counted, as missed (no
 * handler saw its entry); a return-counting probe loses that return. */
static void count_late(struct sp_site *s)
{
	atomic_fetch_add_explicit(&s->foreign_late, 1, memory_order_relaxed);
	if (sp_tls.runtime)
		return;
	int stripe = sp_tstate_stripe();
	sp_tstate_enter(stripe);
	struct sp_probe_vec *vec = atomic_load_explicit(&s->vec, memory_order_consume);
	for (uint32_t i = 0; vec && i < vec->n; i++) {
		struct sp_probe *p = vec->p[i];
		if (p->wants_return && p->kind != SP_KIND_USESSION) {
			sp_count_add(stripe, p->id, SP_LOST);
		} else {
			sp_count_add(stripe, p->id, SP_HITS);
			sp_count_add(stripe, p->id, SP_MISSED);
			if (p->kind == SP_KIND_USESSION)
				sp_count_add(stripe, p->id, SP_LOST);
		}
	}
	sp_tstate_leave(stripe);
}

/* What our patch of S should hold, into OUT[patch_len]. */
static void our_bytes(const struct sp_site *s, uint8_t *out)
{
	if (s->hop) {
		sp_hop_site_bytes(s->addr, s->pad, out);
		return;
	}
	int32_t rel = (int32_t)((intptr_t)s->tramp.entry - (intptr_t)(s->addr + SP_JMP_LEN));
	out[0] = 0xe9;
	__builtin_memcpy(out + 1, &rel, 4);
}

/* Does the removal of another tool's int3 over our jmp of S (the file's
 * first byte written back before our offset bytes WANT[1..]) leave
 * something that stops at once: a one-byte first instruction, or a prefix
 * or REX, before an offset byte that faults?  Else a plain opcode takes our
 * offset bytes as its operands (a ModRM: a register changed or memory
 * written through one; a rel8: a jump), and nothing can be proven. */
static bool removal_survived(const struct sp_site *s, const uint8_t *want)
{
	return patch_len(s) > 1 && sp_coexist_traps(want[1]) &&
	       (s->insn.len == 1 || (is_prefix(s->orig[0]) && want[1] != 0xcc));
}

/* Give S back to the file's bytes after the first one (which another tool
 * owns now): that tool's removal then leaves the file's code.  Registry
 * lock held. */
static void give_back(struct sp_site *s)
{
	if (sp_patch_write(s->addr + 1, s->orig + 1, patch_len(s) - 1) != 0)
		return;
	sp_patch_sync();
	/* the flag first: a thread that faulted on our offset bytes just
	 * before they went back is still recovered (sp_coexist_on_signal) */
	atomic_fetch_or(&s->foreign, SP_FOREIGN_STOPPED);
	s->armed = false;
	s->jmp = false;
	s->rel_written = false;
}

/* The registry's: it knows which probes a site carries (coexist.h). */
static sp_coexist_report_fn reporter;

/* The registry's lock: the fault handler's give-back runs only where it
 * can take it without waiting. */
static bool (*registry_trylock)(void);
static void (*registry_unlock)(void);

void sp_coexist_on_report(sp_coexist_report_fn fn, bool (*trylock)(void), void (*unlock)(void))
{
	reporter = fn;
	registry_trylock = trylock;
	registry_unlock = unlock;
}

/* From the fault handler, at a hit the kernel resumed on our offset bytes
 * (so its int3 stands over our jmp now): where its removal would leave a
 * torn instruction, give the site back to the file's bytes at once, before
 * that removal can come, instead of at the next batch.  Only when this
 * thread is not inside the runtime and no batch holds the registry lock
 * (a batch gives it back itself); else the next such hit tries again. */
static void give_back_now(struct sp_site *s)
{
	uint8_t want[SP_JMP_LEN];
	our_bytes(s, want);
	if (sp_tls.runtime || removal_survived(s, want) || !registry_trylock || !registry_trylock())
		return;
	sp_tls.runtime++;   /* a libc call of the write's (open) is not the program's */
	if (s->armed && s->jmp && *(volatile const uint8_t *)s->addr == 0xcc)
		give_back(s);
	sp_tls.runtime--;
	registry_unlock();
}

bool sp_coexist_kernel_call(const struct sp_object *obj, uintptr_t addr, const uint8_t *code)
{
	if (code[0] != 0xe8)
		return false;
	int32_t rel;
	__builtin_memcpy(&rel, code + 1, 4);
	uintptr_t to = addr + SP_JMP_LEN + (uintptr_t)(intptr_t)rel;
	/* the kernel's page is a mapping of its own, never inside an
	 * object's loaded text: a call there is the program's (26 of libc's
	 * functions start with one; reading the maps for each was ~3 % of
	 * attaching libc:*) */
	if (obj && sp_maps_in_text(obj, to, 1))
		return false;
	/* the kernel names the page of its uprobe trampolines in the maps */
	struct sp_lines f;   /* not stdio: its FILE would be on the program's heap */
	if (sp_lines_open(&f, "/proc/self/maps") != 0)
		return false;
	char line[512];
	bool found = false;
	while (!found && sp_lines_next(&f, line, sizeof(line))) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && to >= lo && to < hi)
			found = strstr(line, "[uprobes-trampoline]") != NULL;
	}
	sp_lines_close(&f);
	return found;
}

/* The process is about to get the fault: say why on fd 2 (no report will
 * be written).  Raw write, hand-formatted: signal context. */
static void say_unproven(uintptr_t addr)
{
	static const char a[] = "selfprobe: a fault inside the patched bytes of the probe site at 0x";
	static const char b[] = ": another tool (a kernel uprobe?) changed them and the state cannot "
				"be recovered\n";
	char hex[17];
	int n = 0;
	for (int sh = 60; sh >= 0; sh -= 4) {
		unsigned d = (unsigned)(addr >> sh) & 15;
		if (d || n || sh == 0)
			hex[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
	}
	sp_syscall6(SYS_write, 2, (long)a, sizeof(a) - 1, 0, 0, 0);
	sp_syscall6(SYS_write, 2, (long)hex, n, 0, 0, 0);
	sp_syscall6(SYS_write, 2, (long)b, sizeof(b) - 1, 0, 0, 0);
}

bool sp_coexist_on_signal(uintptr_t pc, void *ucv)
{
	for (size_t k = 0; k < SP_JMP_LEN; k++) {
		struct sp_site *s = sp_site_lookup(pc - k);
		/* a site given back under the kernel's int3 (give_back) too: a
		 * thread may have faulted on our offset bytes just before */
		bool ours = s && ((s->armed && s->jmp) ||
				  (!s->armed && (atomic_load(&s->foreign) & SP_FOREIGN_STOPPED) &&
				   *(volatile const uint8_t *)s->addr == 0xcc));
		if (!ours || !s->tramp_ok || k >= patch_len(s))
			continue;
		/* No thread ever executes bytes 1.. of our jmp, nor its first
		 * byte while it holds the jmp: a fault here means someone else
		 * changed the first byte. */
		uint8_t b0 = *(volatile const uint8_t *)s->addr;
		if (b0 == jmp_opcode(s))
			continue;
		size_t len = s->insn.len;
		uintptr_t resume = 0;
		bool late = false;
		uint8_t b1 = ((volatile const uint8_t *)s->addr)[1];
		/* the file's first byte restored before our offset bytes: a
		 * thread entering the site runs the first instruction (one
		 * byte) or faults at the site itself (a prefix, then a byte
		 * that faults): it never reaches site+len any other way */
		bool torn_stops = b0 == s->orig[0] && sp_coexist_traps(b1) &&
				  (len == 1 || (is_prefix(b0) && b1 != 0xcc));
		if (k == len && (b0 == 0xcc || torn_stops)) {
			/* The first instruction has run (the kernel's copy of it
			 * after its handlers, perhaps just before its removal, or
			 * the file's one-byte instruction) and what stood after it
			 * faulted at once: nothing else ran. */
			resume = reloc_after(s, len);
			late = true;
		} else if (k == 0 && len > 1 && b0 == s->orig[0]) {
			/* the torn instruction at the site faulted: nothing ran */
			resume = s->tramp.entry;
		}
		atomic_fetch_or(&s->foreign, b0 == 0xcc ? SP_FOREIGN_INT3 : SP_FOREIGN_RESTORED);
		if (!resume) {
			atomic_fetch_or(&s->foreign, SP_FOREIGN_UNPROVEN);
			say_unproven(s->addr);
			return false;
		}
		ucontext_t *uc = ucv;
		uc->uc_mcontext.gregs[REG_RIP] = (greg_t)resume;
		if (late) {
			count_late(s);
			if (b0 == 0xcc)
				give_back_now(s);
		}
		return true;
	}
	return false;
}

static void say(struct sp_site *s, uint8_t flags, const char *what)
{
	uint8_t said = atomic_load(&s->foreign_said);
	if (!(flags & ~said))
		return;
	atomic_fetch_or(&s->foreign_said, (uint8_t)flags);
	if (reporter)
		reporter(s, what, atomic_load(&s->foreign_late));
}

/* Our jmp WANT written again over the file's whole bytes, in arm.c's
 * order: an int3 first (a thread there enters the trampoline through the
 * trap handler), then the offset, then the opcode. */
static bool put_back(struct sp_site *s, const uint8_t *want)
{
	size_t n = patch_len(s);
	if (sp_patch_write(s->addr, &(uint8_t){ 0xcc }, 1) != 0)
		return false;
	sp_patch_sync();
	if (sp_patch_write(s->addr + 1, want + 1, n - 1) != 0 || (sp_patch_sync(), 0) ||
	    sp_patch_write(s->addr, want, 1) != 0)
		return false;   /* an int3 stands, which enters the trampoline */
	sp_patch_sync();
	return true;
}

static void scan_site(struct sp_site *s, const uint8_t *live, bool repair)
{
	uint8_t b0 = live[0];
	uint32_t seen = atomic_load(&s->foreign);
	if (!s->jmp) {
		/* an int3 site: the kernel's removal wrote the file's byte over
		 * our int3 (its presence on it cannot be seen) */
		if (b0 == 0xcc)
			return;
		atomic_fetch_or(&s->foreign, SP_FOREIGN_RESTORED);
		if (repair && b0 == s->orig[0] && sp_patch_write(s->addr, &(uint8_t){ 0xcc }, 1) == 0) {
			sp_patch_sync();
			say(s, SP_FOREIGN_RESTORED, "our int3 was replaced by the file's byte (a kernel uprobe "
				"placed on it and removed), put back; the hits in between were not seen");
		} else
			say(s, SP_FOREIGN_RESTORED, "our int3 was replaced (a kernel uprobe placed on it and "
				"removed); the hits since were not seen");
		return;
	}
	uint8_t want[SP_JMP_LEN];
	size_t n = patch_len(s);
	our_bytes(s, want);
	bool rest_ours = true;
	for (size_t i = 1; i < n; i++)
		rest_ours &= live[i] == want[i];
	size_t len = s->insn.len;
	/* Another tool's int3 over our jmp: do we survive its hits (they
	 * resume past our bytes, or on a byte of them that faults at once)
	 * and its removal (a one-byte first instruction, or a prefix, then a
	 * byte that faults at once)?  Hits resumed past our bytes are not
	 * seen, though. */
	bool seen_hits = len < n && sp_coexist_traps(want[len]);
	bool hits_ok = len >= n || seen_hits;
	bool guarded = hits_ok && removal_survived(s, want);
	if (b0 == want[0] && rest_ours) {
		if (seen & (SP_FOREIGN_INT3 | SP_FOREIGN_RESTORED))
			say(s, seen & (SP_FOREIGN_INT3 | SP_FOREIGN_RESTORED),
			    "its int3 over our jmp came and went");
		return;
	}
	if (!rest_ours && sp_coexist_kernel_call(NULL, s->addr, live)) {
		/* a kernel uprobe on a 5-byte nop, optimized: its int3 became a
		 * call to the kernel's trampoline, which returns after the nop */
		atomic_fetch_or(&s->foreign, SP_FOREIGN_CALL);
		say(s, SP_FOREIGN_CALL, "a call into the kernel's uprobe trampoline over our jmp (a kernel uprobe "
			"on a 5-byte nop, optimized): the hits run the function unprobed and are not seen "
			"while it stands");
		return;
	}
	if (!rest_ours && memcmp(live, s->orig, n) == 0) {
		/* the file's bytes, all of them: an optimized kernel uprobe
		 * removed (it writes back the whole nop) */
		atomic_fetch_or(&s->foreign, SP_FOREIGN_RESTORED);
		bool put = repair && put_back(s, want);
		say(s, SP_FOREIGN_RESTORED, put ? "the file's bytes were written back over our whole jmp (an optimized "
						  "kernel uprobe placed and removed): the hits meanwhile were not "
						  "seen; our jmp put back"
						: "the file's bytes were written back over our whole jmp (an optimized "
						  "kernel uprobe placed and removed): the hits since were not seen");
		return;
	}
	if (!rest_ours) {
		atomic_fetch_or(&s->foreign, SP_FOREIGN_UNPROVEN);
		say(s, SP_FOREIGN_UNPROVEN, "our jmp's offset bytes were overwritten; left as found");
		return;
	}
	if (b0 == 0xcc) {
		atomic_fetch_or(&s->foreign, SP_FOREIGN_INT3);
		if (guarded || !repair) {
			say(s, SP_FOREIGN_INT3, !guarded ? "an int3 over our jmp"
					       : seen_hits ? "an int3 over our jmp: each of its hits is counted "
							     "after the first instruction"
							   : "an int3 over our jmp: its hits run the function "
							     "unprobed and are not seen while it stands");
			return;
		}
		/* its hits resume inside our offset bytes (or, if past them,
		 * its removal would leave a torn instruction): the site goes
		 * back to the file's bytes under its int3, our probe stops */
		give_back(s);
		say(s, SP_FOREIGN_INT3 | SP_FOREIGN_STOPPED,
		    "an int3 over our jmp; the probe is stopped at this site (its bytes are the file's "
		    "again) and its later hits are not counted");
		return;
	}
	if (b0 == s->orig[0]) {
		atomic_fetch_or(&s->foreign, SP_FOREIGN_RESTORED);
		bool put = repair && sp_patch_write(s->addr, &want[0], 1) == 0;
		if (put)
			sp_patch_sync();
		say(s, SP_FOREIGN_RESTORED,
		    seen_hits ? (put ? "the file's first byte was written over our jmp (a kernel uprobe placed and "
				     "removed): every hit meanwhile was counted; our jmp put back"
				   : "the file's first byte was written over our jmp (a kernel uprobe placed and "
				     "removed): every hit meanwhile was counted")
			    : (put ? "the file's first byte was written over our jmp (a kernel uprobe placed and "
				     "removed): its hits while it stood were not seen; our jmp put back"
				   : "the file's first byte was written over our jmp (a kernel uprobe placed and "
				     "removed): its hits while it stood were not seen"));
		return;
	}
	atomic_fetch_or(&s->foreign, SP_FOREIGN_UNPROVEN);
	say(s, SP_FOREIGN_UNPROVEN, "our jmp's first byte was overwritten; left as found");
}

int sp_coexist_disarm(struct sp_site *s)
{
	size_t n = patch_len(s);
	uint8_t live[SP_JMP_LEN], want[SP_JMP_LEN];
	if (!s->armed || !s->jmp || !sp_mem_read(s->addr, live, n) || live[0] == jmp_opcode(s))
		return 1;
	our_bytes(s, want);
	/* The first byte is another tool's: its int3 (its removal writes the
	 * file's byte back), or the file's byte it wrote back already.  Ours
	 * after it go back to the file's, and the first byte stays as it is:
	 * the kernel's probe keeps working.  Bytes after it that are not ours
	 * (the kernel's call over a 5-byte nop, its optimized uprobe) are
	 * left as found. */
	if (memcmp(live + 1, want + 1, n - 1) == 0) {
		int rc = sp_patch_write(s->addr + 1, s->orig + 1, n - 1);
		if (rc != 0)
			return rc;
		sp_patch_sync();
	}
	atomic_fetch_or(&s->foreign, live[0] == 0xcc		? SP_FOREIGN_INT3
				     : live[0] == s->orig[0] ? SP_FOREIGN_RESTORED
							     : SP_FOREIGN_CALL);
	s->armed = false;
	s->jmp = false;
	s->rel_written = false;
	return 0;
}

/* The armed sites' bytes are read in spans: neighbouring sites (on the
 * same or the next page, up to SCAN_SPAN bytes from the first) share one
 * piece of a system call, a span per run of them, several spans a call.
 * A piece per site pinned each site's page in the kernel again: 10 % of
 * attaching libc:* (3600 sites on ~470 pages), after every batch. */
enum { SCAN_BATCH = 256, SCAN_SPAN = 4096, SCAN_ROOM = 64 << 10 };
static uint8_t scan_room[SCAN_ROOM];   /* every caller holds the registry lock */

struct scan_batch {
	struct sp_site *site[SCAN_BATCH];
	size_t at[SCAN_BATCH];           /* its bytes in scan_room */
	size_t span_of[SCAN_BATCH];
	struct iovec local[SCAN_BATCH], remote[SCAN_BATCH];
	size_t k, n_spans, used;
};

static void scan_flush(struct scan_batch *b, bool repair)
{
	if (!b->k)
		return;
	ssize_t got = process_vm_readv(getpid(), b->local, b->n_spans, b->remote, b->n_spans, 0);
	size_t end[SCAN_BATCH], off = 0;   /* each span's end in what was read */
	for (size_t j = 0; j < b->n_spans; j++)
		end[j] = off += b->local[j].iov_len;
	for (size_t i = 0; i < b->k; i++) {
		struct sp_site *s = b->site[i];
		uint8_t one[SP_JMP_LEN], *live = scan_room + b->at[i];
		/* past a short read, one by one (an unmapped one is an object
		 * going away: skipped) */
		if (got >= (ssize_t)end[b->span_of[i]] || sp_mem_read(s->addr, live = one, patch_len(s)))
			scan_site(s, live, repair);
	}
	b->k = b->n_spans = b->used = 0;
}

static void scan_add(struct scan_batch *b, struct sp_site *s, bool repair)
{
	size_t n = patch_len(s);
	struct iovec *last = b->n_spans ? &b->remote[b->n_spans - 1] : NULL;
	uintptr_t lo = last ? (uintptr_t)last->iov_base : 0, hi = last ? lo + last->iov_len : 0;
	bool joins = last && s->addr >= hi && s->addr + n - lo <= SCAN_SPAN &&
		     s->addr / 4096 <= (hi - 1) / 4096 + 1 && b->used + (s->addr + n - hi) <= SCAN_ROOM;
	if (b->k == SCAN_BATCH || (!joins && (b->n_spans == SCAN_BATCH || b->used + n > SCAN_ROOM))) {
		scan_flush(b, repair);
		joins = false;
	}
	if (joins) {
		size_t grow = s->addr + n - hi;
		b->local[b->n_spans - 1].iov_len += grow;
		b->remote[b->n_spans - 1].iov_len += grow;
		b->used += grow;
	} else {
		b->local[b->n_spans] = (struct iovec){ scan_room + b->used, n };
		b->remote[b->n_spans] = (struct iovec){ (void *)s->addr, n };
		b->n_spans++;
		b->used += n;
	}
	struct iovec *sp = &b->remote[b->n_spans - 1];
	b->site[b->k] = s;
	b->span_of[b->k] = b->n_spans - 1;
	b->at[b->k] = (size_t)((uint8_t *)b->local[b->n_spans - 1].iov_base - scan_room) +
		      (s->addr - (uintptr_t)sp->iov_base);
	b->k++;
}

void sp_coexist_scan(bool repair)
{
	if (repair)
		sp_patch_hold();
	static struct scan_batch b;   /* registry lock held */
	b.k = b.n_spans = b.used = 0;
	for (struct sp_site *s = sp_site_after(0);; s = sp_site_after(s->addr)) {
		if (s && s->armed)
			scan_add(&b, s, repair);
		if (!s) {
			scan_flush(&b, repair);
			break;
		}
		uint8_t fl = atomic_load(&s->foreign);
		if (!s->armed && fl)
			say(s, fl,
			    fl & SP_FOREIGN_STOPPED ? "an int3 over our jmp whose removal would leave a torn instruction; "
						      "the probe is stopped at this site (its bytes are the file's "
						      "again) and its later hits are not counted"
			    : fl & SP_FOREIGN_CALL  ? "a call into the kernel's uprobe trampoline over our jmp (an "
						      "optimized kernel uprobe), seen at detach or before: left in place"
			    : fl & SP_FOREIGN_INT3  ? "an int3 over our jmp, seen at detach or before: left in place"
						    : "the file's byte written back over our patch, seen at "
						      "detach or before");
	}
	if (repair)
		sp_patch_release();
}
