/* analyze — see analyze.h.  Mirrors arm.c (sp_arm_site, try_jmp,
 * plan_on_pristine), probe.c (target extents, next_symbol) and btindex.c
 * (the object-wide sweep) over a file's bytes instead of a live mapping:
 * keep them in step when those rules change. */
#include "analyze.h"
#include "emulate.h"
#include "hazard.h"
#include "insn.h"
#include "maps.h"
#include "reloc.h"

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
		char **n = realloc(c->v, cap * sizeof(*n));
		if (!n)
			return;
		c->v = n;
		c->cap = cap;
	}
	char *s = strdup(path);
	if (s)
		c->v[c->n++] = s;
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
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
			if (strncmp(base_name(p), name, strlen(name)) == 0)
				cand_add(c, p);
		}
		pclose(f);
		return;
	}
}

static void free_cands(struct cands *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i]);
	free(c->v);
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
	char *copy = strdup(list), *save = NULL;
	if (!copy)
		return;
	for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save))
		scan_dir(c, d, name);
	free(copy);
}

static int find_program(const char *name, char *path, size_t pathlen)
{
	const char *env = getenv("PATH");
	char *copy = strdup(env && *env ? env : "/usr/local/bin:/usr/bin:/bin"), *save = NULL;
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
	free(copy);
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
		t->bytes = calloc(1, s->memsz);
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
	struct sp_an_object *o = calloc(1, sizeof(*o));
	if (!o || !(o->path = strdup(path))) {
		free(o);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int rc = sp_elf_open(path, &o->elf, err, errlen);
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
		free(o->text[i].bytes);
	if (o->elf)
		sp_elf_close(o->elf);
	sp_usdt_free(&o->notes);
	free(o->targets);
	free(o->path);
	free(o);
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

/* ---- the branch-target index (btindex.c's sweep, over the file) ---- */

static int push_target(struct sp_an_object *o, size_t *cap, uint64_t t)
{
	if (o->n_targets == *cap) {
		size_t c = *cap ? *cap * 2 : 4096;
		uint64_t *n = realloc(o->targets, c * sizeof(*n));
		if (!n)
			return -ENOMEM;
		o->targets = n;
		*cap = c;
	}
	o->targets[o->n_targets++] = t;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Sweep one segment linearly, restarting at every symbol start so that data
 * between functions cannot desynchronise the decode past the next one. */
static int sweep(struct sp_an_object *o, const struct sp_an_text *t, size_t *cap)
{
	const struct sp_elf *e = o->elf;
	uint64_t lo = t->vaddr, hi = t->vaddr + t->size, pc = lo;
	size_t s = 0;
	while (pc < hi) {
		while (s < e->n_syms && e->syms[s].value <= pc)
			s++;
		uint64_t stop = s < e->n_syms && e->syms[s].value < hi ? e->syms[s].value : hi;
		size_t avail = hi - pc < 15 ? hi - pc : 15;
		uint8_t len;
		uint64_t target;
		int br = sp_insn_branch(t->bytes + (pc - lo), avail, pc, &len, &target);
		if (br < 0 || len == 0) {
			pc++;
			continue;
		}
		if (br == 1 && push_target(o, cap, target) != 0)
			return -ENOMEM;
		pc += len;
		if (pc > stop && stop < hi)
			pc = stop;
	}
	return 0;
}

static int build_targets(struct sp_an_object *o)
{
	if (o->targets_built)
		return 0;
	size_t cap = 0;
	for (int i = 0; i < o->n_text; i++)
		if (sweep(o, &o->text[i], &cap) != 0)
			return -ENOMEM;
	qsort(o->targets, o->n_targets, sizeof(*o->targets), cmp_u64);
	size_t k = 0;
	for (size_t i = 0; i < o->n_targets; i++)
		if (k == 0 || o->targets[k - 1] != o->targets[i])
			o->targets[k++] = o->targets[i];
	o->n_targets = k;
	o->targets_built = true;
	return 0;
}

/* Any target strictly inside (LO, HI)? */
static bool target_inside(const struct sp_an_object *o, uint64_t lo, uint64_t hi)
{
	size_t a = 0, b = o->n_targets;
	while (a < b) {
		size_t m = (a + b) / 2;
		if (o->targets[m] <= lo)
			a = m + 1;
		else
			b = m;
	}
	return a < o->n_targets && o->targets[a] < hi;
}

/* ---- one site ---- */

/* probe.c's next_symbol: the first symbol after V, or the end of its text. */
static uint64_t next_symbol(const struct sp_an_object *o, uint64_t v)
{
	const struct sp_sym *next = sp_elf_next_after(o->elf, v);
	uint64_t limit = next ? next->value : 0;
	for (int i = 0; i < o->n_text; i++) {
		const struct sp_an_text *t = &o->text[i];
		if (v >= t->vaddr && v < t->vaddr + t->size && (!limit || limit > t->vaddr + t->size))
			limit = t->vaddr + t->size;
	}
	return limit;
}

static void add_check(struct sp_an_site *s, const char *name, enum sp_an_result r, const char *detail)
{
	if (s->n_checks < SP_AN_MAX_CHECKS)
		s->checks[s->n_checks++] = (struct sp_an_check){ name, r, detail };
}

/* As arm.c's plan_on_pristine, on the file's bytes. */
static int plan_shifted(const struct sp_an_object *o, struct sp_an_site *s, size_t avail,
			const char **reason)
{
	uintptr_t lo, hi;
	sp_jmp_plan_range(s->func, s->func_size, s->addr, avail, &lo, &hi);
	size_t have;
	const uint8_t *src = sp_analyze_text(o, lo, &have);
	if (!src || have < hi - lo) {
		*reason = "function does not decode: it runs past the end of the text mapping";
		return -EINVAL;
	}
	return sp_jmp_plan_image(src, lo, hi - lo, s->func, s->func_size, s->addr, s->limit, &s->w, reason);
}

/* The int3 path's checks (sp_arm_site before prepare).  NULL when the
 * site can take an int3, else why not. */
static const char *int3_checks(struct sp_an_site *s, const char *path, const char *who,
			       const uint8_t *code, size_t avail, bool *fatal)
{
	/* every refusal but the resume's is fatal: sp_arm_site refuses the
	 * site before it tries the jmp */
	*fatal = true;
	const char *why = sp_hazard_int3(path, who, 0);
	add_check(s, "int3 hazard", why ? SP_AN_FAIL : SP_AN_PASS, why);
	if (why)
		return why;
	if (code[0] == 0xcc) {
		why = "the site already holds an int3 (a debugger, a kernel uprobe or another tool?)";
		add_check(s, "site is not an int3 already", SP_AN_FAIL, why);
		return why;
	}
	struct sp_insn in;
	if (sp_insn_decode(code, avail < 15 ? avail : 15, s->addr, &in) != 0) {
		why = "the instruction at the site does not decode";
		add_check(s, "instruction decodes", SP_AN_FAIL, why);
		return why;
	}
	if (in.cls == SP_INSN_REFUSED) {
		why = in.why ? in.why : "instruction cannot be probed";
		add_check(s, "instruction decodes", SP_AN_FAIL, why);
		return why;
	}
	add_check(s, "instruction decodes", SP_AN_PASS, NULL);
	*fatal = false;
	if (sp_emulate_can(&in))
		s->resume = "emulated";
	else if (in.relocatable)
		s->resume = "run out of line";
	else {
		why = in.why ? in.why : "instruction cannot run out of line";
		add_check(s, "int3 resume (emulate or out of line)", SP_AN_FAIL, why);
		return why;
	}
	add_check(s, "int3 resume (emulate or out of line)", SP_AN_PASS, s->resume);
	return NULL;
}

/* The jmp path's checks (arm.c try_jmp).  NULL when the jmp is safe. */
static const char *jmp_checks(struct sp_an_object *o, struct sp_an_site *s, size_t avail)
{
	const char *reason = NULL;
	if (build_targets(o) != 0) {
		reason = "the object's branch targets could not be indexed";
		add_check(s, "branch-target index", SP_AN_FAIL, reason);
		return reason;
	}
	if (plan_shifted(o, s, avail, &reason) != 0) {
		add_check(s, "jmp window plan (function decode, branches, relocatable)", SP_AN_FAIL, reason);
		return reason;
	}
	s->have_window = true;
	add_check(s, "jmp window plan (function decode, branches, relocatable)", SP_AN_PASS, NULL);
	if (s->addr != s->func && s->w.n_insns > 1 && o->elf->has_except_table) {
		reason = "mid-function window of several instructions in an object with exception landing pads";
		add_check(s, "landing pads (mid-function window)", SP_AN_FAIL, reason);
		return reason;
	}
	add_check(s, "landing pads (mid-function window)", SP_AN_PASS,
		  o->elf->has_except_table ? "entry or one-instruction window" : "no .gcc_except_table");
	if (target_inside(o, s->addr, s->addr + s->w.len)) {
		reason = "branch target inside the jmp window (from elsewhere in the object)";
		add_check(s, "no branch from the object into the window", SP_AN_FAIL, reason);
		return reason;
	}
	add_check(s, "no branch from the object into the window", SP_AN_PASS, NULL);
	uint8_t buf[SP_RELOC_MAX];
	struct sp_reloc_map map;
	if (sp_reloc_window(&s->w, sp_analyze_tramp_addr(o, s->addr), buf, sizeof(buf), &map, &reason) < 0) {
		add_check(s, "window relocates", SP_AN_FAIL, reason);
		return reason;
	}
	add_check(s, "window relocates", SP_AN_PASS, NULL);
	add_check(s, "no other probe inside the window", SP_AN_NOT_CHECKED, "depends on the other probes of a run");
	add_check(s, "trampoline page within +-2 GiB", SP_AN_NOT_CHECKED, "decided at attach time");
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
		/* probe.c target_for: the named function's extent */
		s->func = sym->size ? sym->value : 0;
		s->func_size = sym->size;
		s->limit = next_symbol(o, sym->value);
	} else {
		/* probe.c resolve_usdt: the function holding the note */
		s->func = f && f->size ? f->value : 0;
		s->func_size = f ? f->size : 0;
		s->limit = next_symbol(o, addr);
	}
	if (f && f->is_ifunc) {
		s->mode = SP_AN_RUNTIME;
		s->reason = "ifunc (resolved at run time)";
		add_check(s, "IFUNC", SP_AN_NOT_CHECKED,
			  "the site is the implementation its resolver picks in the process");
		return 0;
	}
	size_t avail;
	const uint8_t *code = sp_analyze_text(o, addr, &avail);
	if (avail < SP_JMP_LEN) {
		s->mode = SP_AN_NONE;
		s->reason = avail ? "the site is too close to the end of the text mapping"
				  : "address is not in the object's executable text";
		add_check(s, "in executable text", SP_AN_FAIL, s->reason);
		return 0;
	}
	add_check(s, "in executable text", SP_AN_PASS, NULL);
	char who[256];
	if (f)
		snprintf(who, sizeof(who), addr == f->value ? "%s" : "%s+%#lx", f->name,
			 (unsigned long)(addr - f->value));
	bool fatal = false;
	const char *no_int3 = int3_checks(s, o->path, f ? who : NULL, code, avail, &fatal);
	if (fatal) {
		/* hazard, an int3 already there, or no decode: nothing is patched */
		s->mode = SP_AN_NONE;
		s->reason = no_int3;
		return 0;
	}
	const char *no_jmp = jmp_checks(o, s, avail);
	if (!no_jmp) {
		s->mode = SP_AN_JMP;
		s->reason = NULL;
	} else if (!no_int3) {
		s->mode = SP_AN_INT3;
		s->reason = no_jmp;
	} else {
		/* neither: the jmp's refusal is the one the report would not
		 * show; the int3 path's is why it fails */
		s->mode = SP_AN_NONE;
		s->reason = no_int3;
	}
	return 0;
}
