/* analyze — see analyze.h.  Mirrors engine/targets.c's target extents
 * (next_symbol) over a file; the decision itself is decide.c's. */
#include "symcache.h"
#include "heap.h"
#include "analyze.h"
#include "golang.h"
#include "hazard.h"
#include "hop.h"
#include "insn.h"
#include "maps.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- finding the file ---- */

struct cands {
	char **v;                /* realpaths, unique */
	size_t n, cap;
};

static bool is_elf_file(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return false;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	unsigned char m[5];
	bool ok = read(fd, m, 5) == 5 && memcmp(m, "\177ELF", 4) == 0 && m[4] == 2;  /* ELFCLASS64 */
	close(fd);
	return ok;
}

static void cand_add(struct cands *c, const char *path)
{
	char real[PATH_MAX];
	if (!realpath(path, real) || !is_elf_file(real))
		return;
	/* keep the name asked for (libc.so.6), not the target of its symlink */
	for (size_t i = 0; i < c->n; i++) {
		char r2[PATH_MAX];
		if (realpath(c->v[i], r2) && strcmp(r2, real) == 0)
			return;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		char **n = sp_realloc(c->v, cap * sizeof(*n));
		if (!n)
			return;
		c->v = n;
		c->cap = cap;
	}
	char *s = sp_strdup(path);
	if (s)
		c->v[c->n++] = s;
}

/* Candidates whose basename could match NAME at all (a prefix), from DIR. */
static void scan_dir(struct cands *c, const char *dir, const char *name)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, name, strlen(name)) != 0)
			continue;
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		cand_add(c, p);
	}
	closedir(d);
}

/* The ldconfig cache: "\tlibc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6". */
static void scan_ldconfig(struct cands *c, const char *name)
{
	static const char *const tools[] = { "/sbin/ldconfig", "/usr/sbin/ldconfig" };
	for (size_t t = 0; t < 2; t++) {
		if (access(tools[t], X_OK) != 0)
			continue;
		char cmd[64];
		snprintf(cmd, sizeof(cmd), "%s -p 2>/dev/null", tools[t]);
		FILE *f = popen(cmd, "r");
		if (!f)
			return;
		char line[PATH_MAX + 128];
		while (fgets(line, sizeof(line), f)) {
			char *arrow = strstr(line, " => ");
			if (!arrow || !strstr(line, "x86-64"))
				continue;
			char *p = arrow + 4;
			p[strcspn(p, "\n")] = 0;
			if (strncmp(sp_maps_base_name(p), name, strlen(name)) == 0)
				cand_add(c, p);
		}
		pclose(f);
		return;
	}
}

static void free_cands(struct cands *c)
{
	for (size_t i = 0; i < c->n; i++)
		sp_free(c->v[i]);
	sp_free(c->v);
}

static int pick(const struct cands *c, const char *name, char *path, size_t pathlen,
		char *err, size_t errlen)
{
	for (int rank = 0; rank < SP_MAPS_RANKS; rank++) {
		size_t count = 0, found = 0;
		for (size_t i = 0; i < c->n; i++)
			if (sp_maps_name_rank(c->v[i], name, rank)) {
				if (!count)
					found = i;
				count++;
			}
		if (count == 1) {
			snprintf(path, pathlen, "%s", c->v[found]);
			return 0;
		}
		if (count > 1) {
			size_t used = (size_t)snprintf(err, errlen, "'%s' is ambiguous:", name);
			const char *sep = " ";
			for (size_t i = 0; i < c->n && used < errlen; i++)
				if (sp_maps_name_rank(c->v[i], name, rank)) {
					used += (size_t)snprintf(err + used, errlen - used, "%s%s", sep, c->v[i]);
					sep = ", ";
				}
			return -EINVAL;
		}
	}
	return -ENOENT;
}

/* Each ':'-separated directory of LIST. */
static void scan_list(struct cands *c, const char *list, const char *name)
{
	if (!list)
		return;
	char *copy = sp_strdup(list), *save = NULL;
	if (!copy)
		return;
	for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save))
		scan_dir(c, d, name);
	sp_free(copy);
}

static int find_program(const char *name, char *path, size_t pathlen)
{
	const char *env = getenv("PATH");
	char *copy = sp_strdup(env && *env ? env : "/usr/local/bin:/usr/bin:/bin"), *save = NULL;
	if (!copy)
		return -ENOMEM;
	int rc = -ENOENT;
	for (char *d = strtok_r(copy, ":", &save); d && rc; d = strtok_r(NULL, ":", &save)) {
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", d, name);
		if (access(p, X_OK) == 0 && is_elf_file(p)) {
			snprintf(path, pathlen, "%s", p);
			rc = 0;
		}
	}
	sp_free(copy);
	return rc;
}

int sp_analyze_resolve(const char *name, char *path, size_t pathlen, char *err, size_t errlen)
{
	if (errlen)
		err[0] = 0;
	if (!name || !*name) {
		snprintf(err, errlen, "empty object name");
		return -EINVAL;
	}
	if (strchr(name, '/')) {
		if (access(name, R_OK) != 0) {
			int e = errno;
			snprintf(err, errlen, "%s: %s", name, strerror(e));
			return -e;
		}
		snprintf(path, pathlen, "%s", name);
		return 0;
	}
	struct cands c = { 0 };
	scan_list(&c, getenv("LD_LIBRARY_PATH"), name);
	scan_ldconfig(&c, name);
	scan_list(&c, "/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:/usr/local/lib:/lib64:/usr/lib64:/lib:/usr/lib",
		  name);
	int rc = pick(&c, name, path, pathlen, err, errlen);
	free_cands(&c);
	if (rc == -ENOENT && find_program(name, path, pathlen) == 0)
		rc = 0;
	if (rc == -ENOENT)
		snprintf(err, errlen, "'%s' is neither a library (LD_LIBRARY_PATH, ldconfig cache, /usr/lib…) "
			 "nor a program in PATH", name);
	return rc;
}

/* ---- the file ---- */

static int load_text(struct sp_an_object *o, int fd, char *err, size_t errlen)
{
	const struct sp_elf *e = o->elf;
	for (size_t i = 0; i < e->n_segs; i++) {
		const struct sp_segment *s = &e->segs[i];
		if (!(s->flags & 1 /* PF_X */) || s->memsz == 0)
			continue;
		if (o->n_text == SP_AN_MAX_TEXT || s->filesz > s->memsz || s->memsz > (1ull << 32)) {
			snprintf(err, errlen, "%s: unexpected executable segments", o->path);
			return -EINVAL;
		}
		struct sp_an_text *t = &o->text[o->n_text];
		t->bytes = sp_calloc(1, s->memsz);
		if (!t->bytes) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		t->vaddr = s->vaddr;
		t->size = s->memsz;
		o->n_text++;
		if (s->filesz && pread(fd, t->bytes, s->filesz, (off_t)s->offset) != (ssize_t)s->filesz) {
			snprintf(err, errlen, "%s: cannot read the segment at offset %#lx", o->path,
				 (unsigned long)s->offset);
			return -EIO;
		}
	}
	return 0;
}

int sp_analyze_open(const char *path, struct sp_an_object **out, char *err, size_t errlen)
{
	struct sp_an_object *o = sp_calloc(1, sizeof(*o));
	if (!o || !(o->path = sp_strdup(path))) {
		sp_free(o);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int rc = sp_elf_open_cached(path, &o->elf, err, errlen);
	if (rc == 0) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		} else {
			rc = load_text(o, fd, err, errlen);
			close(fd);
		}
	}
	if (rc == 0)
		rc = sp_usdt_read(path, &o->notes, err, errlen);
	if (rc) {
		sp_analyze_close(o);
		return rc;
	}
	*out = o;
	return 0;
}

void sp_analyze_close(struct sp_an_object *o)
{
	if (!o)
		return;
	for (int i = 0; i < o->n_text; i++)
		sp_free(o->text[i].bytes);
	if (o->elf)
		sp_elf_close(o->elf);
	sp_usdt_free(&o->notes);
	sp_btindex_free(o->idx);
	sp_free(o->claims);
	sp_free(o->path);
	sp_free(o);
}

const uint8_t *sp_analyze_text(const struct sp_an_object *o, uint64_t vaddr, size_t *avail)
{
	for (int i = 0; i < o->n_text; i++) {
		const struct sp_an_text *t = &o->text[i];
		if (vaddr >= t->vaddr && vaddr < t->vaddr + t->size) {
			*avail = t->vaddr + t->size - vaddr;
			return t->bytes + (vaddr - t->vaddr);
		}
	}
	*avail = 0;
	return NULL;
}

uint64_t sp_analyze_tramp_addr(const struct sp_an_object *o, uint64_t site)
{
	for (int i = 0; i < o->n_text; i++) {
		const struct sp_an_text *t = &o->text[i];
		if (site >= t->vaddr && site < t->vaddr + t->size)
			return (t->vaddr + t->size + 0x1fff) & ~(uint64_t)0xfff;
	}
	return (site + 0x1fff) & ~(uint64_t)0xfff;
}

const char *sp_an_mode_name(enum sp_an_mode m)
{
	switch (m) {
	case SP_AN_JMP: return "jmp";
	case SP_AN_INT3: return "int3";
	case SP_AN_RUNTIME: return "ifunc";
	default: return "none";
	}
}

/* ---- the object's index (btindex.c, over the file's bytes) ---- */

static const struct sp_btindex *index_get(struct sp_an_object *o)
{
	if (!o->idx_built) {
		struct sp_objcode oc = { .elf = o->elf, .path = o->path, .bias = 0, .n_text = o->n_text };
		for (int i = 0; i < o->n_text && i < SP_MAX_TEXT_RANGES; i++) {
			oc.text[i].start = o->text[i].vaddr;
			oc.text[i].end = o->text[i].vaddr + o->text[i].size;
			oc.text[i].bytes = o->text[i].bytes;
		}
		bool loaded;
		o->idx = sp_btindex_build_cached(&oc, o->elf->build_id, o->elf->build_id_len, &loaded);
		o->idx_built = true;
	}
	return o->idx;
}

const char *sp_an_patch_name(const struct sp_an_site *s)
{
	switch (s->mode) {
	case SP_AN_JMP: return s->path == SP_PATH_HOP ? "hop" : "jmp5";
	case SP_AN_INT3: return "int3";
	default: return NULL;
	}
}

/* ---- claims: what a run attaching the sites in this order would patch ---- */

static size_t claim_first_above(const struct sp_an_object *o, uint64_t lo)
{
	size_t a = 0, b = o->n_claims;
	while (a < b) {
		size_t m = (a + b) / 2;
		if (o->claims[m].lo < lo)
			a = m + 1;
		else
			b = m;
	}
	return a;
}

/* Does a claim (a hop's, with PADS_ONLY: its pad or its carrier) overlap
 * [lo, hi)?  Claims are at most SP_HOP_CARRIER_MAX bytes long. */
static bool overlaps(const struct sp_an_object *o, uint64_t lo, uint64_t hi, bool pads_only)
{
	for (size_t i = claim_first_above(o, lo > SP_HOP_CARRIER_MAX ? lo - SP_HOP_CARRIER_MAX : 0);
	     i < o->n_claims && o->claims[i].lo < hi; i++)
		if (o->claims[i].hi > lo && (o->claims[i].pad || !pads_only) && o->claims[i].site != o->claiming)
			return true;
	return false;
}

static bool claimed(const void *ctx, uintptr_t lo, uintptr_t hi)
{
	return overlaps(ctx, lo, hi, false);
}

static void claim(struct sp_an_object *o, uint64_t lo, uint64_t hi, bool pad)
{
	for (size_t i = claim_first_above(o, lo); i < o->n_claims && o->claims[i].lo == lo; i++)
		if (o->claims[i].site == o->claiming)
			return;   /* an alias of a site claimed already */
	if (o->n_claims == o->cap_claims) {
		size_t cap = o->cap_claims ? o->cap_claims * 2 : 256;
		struct sp_an_claim *n = sp_realloc(o->claims, cap * sizeof(*n));
		if (!n)
			return;
		o->claims = n;
		o->cap_claims = cap;
	}
	size_t i = claim_first_above(o, lo);
	memmove(o->claims + i + 1, o->claims + i, (o->n_claims - i) * sizeof(*o->claims));
	o->claims[i] = (struct sp_an_claim){ lo, hi, o->claiming, pad };
	o->n_claims++;
}

/* The hop part of the decision (hop.h), on the file's bytes, and the
 * bytes this site claims for the sites analysed after it. */
static void decide_hop(struct sp_an_object *o, const struct sp_an_text *t,
		       const struct sp_site_facts *f, struct sp_an_site *s)
{
	o->claiming = s->addr;
	if (sp_hop_candidate(&s->v)) {
		struct sp_hop_facts hf = { .code = t->bytes, .lo = t->vaddr, .len = t->size, .elf = o->elf,
					   .bias = 0, .claimed = claimed, .claimed_ctx = o };
		sp_hop_decide(f, &hf, &s->v);
	}
	if (s->v.path == SP_PATH_JMP5 && overlaps(o, s->addr, s->addr + SP_JMP_LEN, true)) {
		/* as arm.c take_jmp: another site's hop owns those bytes */
		s->v.path = s->v.resume ? SP_PATH_INT3 : SP_PATH_NONE;
		s->v.reason = "its jmp would overwrite padding another probe's hop uses (its pad, or the carrier holding it)";
	}
	if (s->v.path == SP_PATH_HOP) {
		s->pad = s->v.hop_pad;
		if (s->v.hop_carrier)   /* the carrier's bytes are the hop's, its pad among them */
			claim(o, s->v.hop_carrier, s->v.hop_carrier + s->v.hop_carrier_len, true);
		else
			claim(o, s->pad, s->pad + SP_HOP_PAD_LEN, true);
	}
	if (s->v.path != SP_PATH_NONE)
		claim(o, s->addr, s->addr + SP_JMP_LEN, false);
}

/* ---- one site ---- */

/* targets.c's next_symbol: the first function (symbol or .eh_frame extent)
 * starting after V, or the end of its text. */
static uint64_t next_symbol(const struct sp_an_object *o, uint64_t v)
{
	uint64_t limit = sp_elf_next_start(o->elf, v);
	for (int i = 0; i < o->n_text; i++) {
		const struct sp_an_text *t = &o->text[i];
		if (v >= t->vaddr && v < t->vaddr + t->size && (!limit || limit > t->vaddr + t->size))
			limit = t->vaddr + t->size;
	}
	return limit;
}

static void add_check(struct sp_an_site *s, const char *name, enum sp_check_result r, const char *detail)
{
	if (s->n_checks < SP_AN_MAX_CHECKS)
		s->checks[s->n_checks++] = (struct sp_check){ name, r, detail };
}

/* The text segment holding VADDR. */
static const struct sp_an_text *text_of(const struct sp_an_object *o, uint64_t vaddr)
{
	for (int i = 0; i < o->n_text; i++)
		if (vaddr >= o->text[i].vaddr && vaddr < o->text[i].vaddr + o->text[i].size)
			return &o->text[i];
	return NULL;
}

int sp_analyze_site(struct sp_an_object *o, const struct sp_sym *sym, uint64_t addr,
		    struct sp_an_site *s)
{
	memset(s, 0, sizeof(*s));
	s->addr = addr;
	const struct sp_sym *f = sym ? sym : sp_elf_containing(o->elf, addr);
	s->sym = f;
	if (sym) {
		/* targets.c sp_target_fill: the named function's extent (its
		 * .eh_frame one when the symbol has no size) */
		s->func_size = sym->size ? sym->size : sp_elf_fde_size(o->elf, sym->value);
		s->func = s->func_size ? sym->value : 0;
		s->limit = next_symbol(o, sym->value);
	} else {
		/* targets.c resolve_usdt: the function holding the note (a sized
		 * symbol, else its .eh_frame extent) */
		uint64_t fs = 0, fz = 0;
		bool known = sp_elf_func_extent(o->elf, addr, &fs, &fz);
		s->func = known ? fs : 0;
		s->func_size = known ? fz : 0;
		s->limit = next_symbol(o, addr);
	}
	/* a Go function (golang.h): refused, or its entry past the stack
	 * check, or the int3 path where it has none */
	const char *go_no_jmp = NULL;
	if (sym && addr == sym->value && s->func_size && sp_go_object(o->path)) {
		const char *why = sp_go_refusal(o->path, sym->name, false, NULL);
		const struct sp_an_text *gt = text_of(o, addr);
		size_t skip = 0;
		size_t n = s->func_size < SP_GO_CHECK_MAX ? s->func_size : SP_GO_CHECK_MAX;
		if (gt && addr + n <= gt->vaddr + gt->size)
			skip = sp_go_stack_check_len(gt->bytes + (addr - gt->vaddr), n);
		if (why) {
			s->mode = SP_AN_NONE;
			s->reason = why;
			add_check(s, "Go function", SP_CHECK_FAIL, why);
			return 0;
		}
		if (skip && skip < s->func_size) {
			s->addr = addr += skip;
			add_check(s, "Go function", SP_CHECK_PASS, "the entry probe goes past the stack check");
		} else {
			go_no_jmp = "Go function without a stack check (nosplit): its goroutine stack may lack "
				    "room for the trampoline's frame, the int3 path uses the signal stack";
		}
	}
	if (f && f->is_ifunc) {
		s->mode = SP_AN_RUNTIME;
		s->reason = "ifunc (resolved at run time)";
		add_check(s, "IFUNC", SP_CHECK_NOT_CHECKED,
			  "the site is the implementation its resolver picks in the process");
		return 0;
	}
	size_t avail;
	sp_analyze_text(o, addr, &avail);
	if (avail < SP_JMP_LEN) {
		s->mode = SP_AN_NONE;
		s->reason = avail ? "the site is too close to the end of the text mapping"
				  : "address is not in the object's executable text";
		add_check(s, "in executable text", SP_CHECK_FAIL, s->reason);
		return 0;
	}
	add_check(s, "in executable text", SP_CHECK_PASS, NULL);
	char who[256];
	if (f)
		snprintf(who, sizeof(who), addr == f->value ? "%s" : "%s+%#lx", f->name,
			 (unsigned long)(addr - f->value));
	const struct sp_an_text *t = text_of(o, addr);
	struct sp_site_facts facts = {
		.site = addr, .bias = 0,
		.code = t->bytes, .code_lo = t->vaddr, .code_len = t->size, .avail = avail,
		.func = s->func, .func_size = s->func_size, .limit = s->limit,
		.idx = index_get(o), .landing_pads = o->elf->has_except_table,
		.hazard = sp_hazard_int3(o->path, f ? who : NULL, 0),
		.go_site = f && sp_go_object(o->path),
		.live = false, .tramp_addr = sp_analyze_tramp_addr(o, addr),
	};
	sp_decide(&facts, &s->v);
	decide_hop(o, t, &facts, s);
	if (go_no_jmp && (s->v.path == SP_PATH_JMP5 || s->v.path == SP_PATH_HOP)) {
		s->v.path = SP_PATH_INT3;
		s->v.reason = go_no_jmp;
		s->v.have_window = false;
	}
	for (int i = 0; i < s->v.n_trail; i++)
		add_check(s, s->v.trail[i].name, s->v.trail[i].result, s->v.trail[i].detail);
	s->path = s->v.path;
	s->reason = s->v.reason;
	s->resume = s->v.resume;
	s->have_window = s->v.have_window;
	s->w = s->v.w;
	s->mode = s->v.path == SP_PATH_JMP5 || s->v.path == SP_PATH_HOP ? SP_AN_JMP
		: s->v.path == SP_PATH_INT3 ? SP_AN_INT3 : SP_AN_NONE;
	return 0;
}
