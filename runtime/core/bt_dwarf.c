/* bt_dwarf — args.NAME of a bpftrace program: a parameter's register, from
 * the function's DWARF (libdw), read once when the program is compiled.
 *
 * At a function's entry, the SysV x86-64 ABI puts the first six INTEGER
 * class arguments in rdi, rsi, rdx, rcx, r8, r9: a parameter's register is
 * its position among the parameters, as long as every parameter before it
 * (and itself) is an integer, an enum, a bool, a char or a pointer of at
 * most 8 bytes.  Anything else — a struct or union passed by value, a
 * float or double (vector registers), a 16-byte integer, a seventh
 * parameter (on the stack) — is refused with that reason rather than read
 * from a register that does not hold it.  The DWARF must be in the object
 * itself or in its debug file under /usr/lib/debug/.build-id (Debian's
 * -dbgsym packages); without either, the error names the object and the
 * function.
 */
#include "bt.h"
#include "maps.h"

#include <dlfcn.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The object's path: NULL is the main program, a path is itself, a
 * library name is the loaded object it designates. */
static int object_path(const char *object, char *out, size_t n, char *err, size_t errlen)
{
	if (object && strchr(object, '/')) {
		snprintf(out, n, "%s", object);
		return 0;
	}
	struct sp_object *objs;
	size_t nobj;
	if (sp_maps_snapshot(&objs, &nobj) != 0) {
		snprintf(err, errlen, "cannot list the loaded objects");
		return -1;
	}
	char why[160] = "";
	int i = sp_maps_find(objs, nobj, object, why, sizeof(why));
	if (i < 0)
		snprintf(err, errlen, "%s is not loaded at start-up (name it by path): %s", object ? object : "the program",
			 why);
	else
		snprintf(out, n, "%s", objs[i].path);
	sp_maps_free(objs, nobj);
	return i < 0 ? -1 : 0;
}

/* libdw, loaded when a program first names args: linked, it and the
 * compression libraries it needs would be in every probed process (and a
 * spec naming one of them would attach there). */
#define DW_FNS(X) X(dwarf_begin) X(dwarf_end) X(dwarf_attr_integrate) X(dwarf_formref_die) X(dwarf_tag) \
	X(dwarf_formudata) X(dwarf_child) X(dwarf_diename) X(dwarf_siblingof) X(dwarf_attr)          \
	X(dwarf_formflag) X(dwarf_hasattr) X(dwarf_nextcu) X(dwarf_offdie)
static struct {
#define X(f) __typeof__(f) *f;
	DW_FNS(X)
#undef X
} dw_;

/* 0, or -1 with why in ERR. */
static int load_libdw(char *err, size_t errlen)
{
	static int loaded;   /* 1: yes; -1: it cannot be */
	if (loaded == 0) {
		void *h = dlopen("libdw.so.1", RTLD_LAZY | RTLD_LOCAL);
		loaded = h ? 1 : -1;
#define X(f) if (h && !(dw_.f = (__typeof__(f) *)dlsym(h, #f))) loaded = -1;
		DW_FNS(X)
#undef X
	}
	if (loaded < 0) {
		const char *why = dlerror();
		snprintf(err, errlen, "args needs libdw.so.1 (Debian's libdw1), which cannot be loaded: %s",
			 why ? why : "a symbol is missing");
	}
	return loaded > 0 ? 0 : -1;
}

/* The file holding PATH's DWARF: itself, or its build-id debug file. */
static Dwarf *open_dwarf(const char *path, int *fd)
{
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return NULL;
	Dwarf *dw = dw_.dwarf_begin(*fd, DWARF_C_READ);
	if (dw)
		return dw;
	/* the build id, from the ELF notes */
	elf_version(EV_CURRENT);
	Elf *elf = elf_begin(*fd, ELF_C_READ, NULL);
	char dbg[600] = "";
	for (Elf_Scn *scn = NULL; elf && (scn = elf_nextscn(elf, scn));) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		Elf_Data *d = elf_getdata(scn, NULL);
		GElf_Nhdr nh;
		size_t off = 0, no, de;
		while (d && (off = gelf_getnote(d, off, &nh, &no, &de)) > 0) {
			if (nh.n_type != NT_GNU_BUILD_ID || nh.n_descsz < 2)
				continue;
			const unsigned char *id = (const unsigned char *)d->d_buf + de;
			int o = snprintf(dbg, sizeof(dbg), "/usr/lib/debug/.build-id/%02x/", id[0]);
			for (size_t k = 1; k < nh.n_descsz && o < (int)sizeof(dbg) - 8; k++)
				o += snprintf(dbg + o, sizeof(dbg) - (size_t)o, "%02x", id[k]);
			snprintf(dbg + o, sizeof(dbg) - (size_t)o, ".debug");
		}
	}
	if (elf)
		elf_end(elf);
	close(*fd);
	*fd = -1;
	if (!dbg[0] || (*fd = open(dbg, O_RDONLY | O_CLOEXEC)) < 0)
		return NULL;
	dw = dw_.dwarf_begin(*fd, DWARF_C_READ);
	if (!dw) {
		close(*fd);
		*fd = -1;
	}
	return dw;
}

/* The type of DIE, through typedefs and qualifiers. */
static bool peel(Dwarf_Die *die, Dwarf_Die *type)
{
	Dwarf_Attribute a;
	if (!dw_.dwarf_attr_integrate(die, DW_AT_type, &a) || !dw_.dwarf_formref_die(&a, type))
		return false;
	for (;;) {
		int tag = dw_.dwarf_tag(type);
		if (tag != DW_TAG_typedef && tag != DW_TAG_const_type && tag != DW_TAG_volatile_type &&
		    tag != DW_TAG_restrict_type && tag != DW_TAG_atomic_type)
			return true;
		if (!dw_.dwarf_attr_integrate(type, DW_AT_type, &a) || !dw_.dwarf_formref_die(&a, type))
			return false;
	}
}

/* NULL when the parameter is passed in one general register (*SIGNED
 * set), else why not. */
static const char *integer_class(Dwarf_Die *param, bool *is_signed)
{
	Dwarf_Die t;
	*is_signed = false;
	if (!peel(param, &t))
		return "its type is unknown";
	Dwarf_Word size = 0;
	Dwarf_Attribute a;
	switch (dw_.dwarf_tag(&t)) {
	case DW_TAG_pointer_type:
	case DW_TAG_reference_type:
	case DW_TAG_rvalue_reference_type:
		return NULL;
	case DW_TAG_enumeration_type:
		return NULL;
	case DW_TAG_base_type: {
		Dwarf_Word enc = 0;
		if (dw_.dwarf_attr_integrate(&t, DW_AT_encoding, &a))
			dw_.dwarf_formudata(&a, &enc);
		if (dw_.dwarf_attr_integrate(&t, DW_AT_byte_size, &a))
			dw_.dwarf_formudata(&a, &size);
		if (enc == DW_ATE_float || enc == DW_ATE_complex_float)
			return "a floating-point value (passed in a vector register)";
		if (size > 8)
			return "wider than 8 bytes (two registers)";
		*is_signed = enc == DW_ATE_signed || enc == DW_ATE_signed_char;
		return NULL;
	}
	case DW_TAG_structure_type:
	case DW_TAG_union_type:
	case DW_TAG_class_type:
		return "a struct or union passed by value";
	default:
		return "not an integer or a pointer";
	}
}

struct search {
	const char *func, *param;
	int index;
	bool is_signed, found_func;
	char why[200];
};

/* In the subprogram DIE: PARAM's position, every earlier one checked. */
static int in_function(Dwarf_Die *fn, struct search *s)
{
	Dwarf_Die c;
	if (dw_.dwarf_child(fn, &c) != 0)
		return -1;
	int pos = 0;
	do {
		if (dw_.dwarf_tag(&c) != DW_TAG_formal_parameter)
			continue;
		const char *name = dw_.dwarf_diename(&c);
		bool sgn;
		const char *bad = integer_class(&c, &sgn);
		bool it = name && strcmp(name, s->param) == 0;
		if (bad) {
			snprintf(s->why, sizeof(s->why), "%s %s of %s is %s: %s", it ? "parameter" : "an earlier parameter,",
				 name ? name : "(unnamed)", s->func, bad,
				 it ? "not read from a register" : "the registers of the ones after it are not computed");
			return 1;
		}
		if (it) {
			if (pos > 5) {
				snprintf(s->why, sizeof(s->why), "parameter %s of %s is the %dth: on the stack, not read",
					 s->param, s->func, pos + 1);
				return 1;
			}
			s->index = pos;
			s->is_signed = sgn;
			return 0;
		}
		pos++;
	} while (dw_.dwarf_siblingof(&c, &c) == 0);
	snprintf(s->why, sizeof(s->why), "%s has no parameter named %s", s->func, s->param);
	return 1;
}

/* A definition of FUNC (not a declaration, not an inlined-only copy). */
static bool is_definition(Dwarf_Die *d, const char *func)
{
	const char *name = dw_.dwarf_diename(d);
	if (!name || strcmp(name, func) != 0)
		return false;
	Dwarf_Attribute a;
	bool decl = false;
	if (dw_.dwarf_attr(d, DW_AT_declaration, &a))
		dw_.dwarf_formflag(&a, &decl);
	return !decl && dw_.dwarf_hasattr(d, DW_AT_low_pc);
}

static int bt_dwarf_args(const char *object, const char *func, const char *param, int *index, bool *is_signed,
			 char *err, size_t errlen)
{
	char path[4096];
	if (load_libdw(err, errlen) != 0 || object_path(object, path, sizeof(path), err, errlen) != 0)
		return -1;
	int fd;
	Dwarf *dw = open_dwarf(path, &fd);
	if (!dw) {
		snprintf(err, errlen, "no debug information (DWARF) for %s in %s (build it with -g, or install its debug file)",
			 func, path);
		return -1;
	}
	struct search s = { .func = func, .param = param, .index = -1 };
	int rc = 1;
	Dwarf_Off off = 0, next;
	size_t hsize;
	while (rc > 0 && dw_.dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL) == 0) {
		Dwarf_Die cu;
		if (dw_.dwarf_offdie(dw, off + hsize, &cu)) {
			Dwarf_Die d;
			if (dw_.dwarf_child(&cu, &d) == 0)
				do {
					if (dw_.dwarf_tag(&d) == DW_TAG_subprogram && is_definition(&d, func)) {
						s.found_func = true;
						rc = in_function(&d, &s);
					}
				} while (rc > 0 && dw_.dwarf_siblingof(&d, &d) == 0);
		}
		off = next;
	}
	dw_.dwarf_end(dw);
	close(fd);
	if (rc == 0) {
		*index = s.index;
		*is_signed = s.is_signed;
		return 0;
	}
	if (!s.found_func)
		snprintf(err, errlen, "no debug information (DWARF) for %s in %s", func, path);
	else
		snprintf(err, errlen, "%s", s.why);
	return -1;
}

void bt_dwarf_register(void)
{
	bt_set_args_resolver(bt_dwarf_args);
}
