/* usdt — SystemTap SDT notes and their argument specs.
 *
 * A sys/sdt.h probe site (STAP_PROBEn, or a dtrace -h macro) compiles to a
 * one-byte nop in the code plus an ELF note describing it, e.g. from
 * `readelf -n`:
 *
 *   stapsdt              0x0000003b       NT_STAPSDT (SystemTap probe descriptors)
 *     Provider: sptest
 *     Name: args2
 *     Location: 0x0000000000001171, Base: 0x0000000000002004, Semaphore: 0x0000000000004010
 *     Arguments: -1@%dil 8@%rsi
 *
 * The note (section .note.stapsdt, owner "stapsdt", type 3) has a desc of
 * three addresses of the ELF class's width, then three NUL-terminated
 * strings:
 *
 *   pc        the nop's ELF virtual address
 *   base      the address of .stapsdt.base as the assembler saw it
 *   semaphore a 16-bit counter in .probes (0: none); *_ENABLED() tests it
 *   provider\0 name\0 args\0
 *
 * Notes are not relocated.  When a tool (prelink) moves the object, the
 * section .stapsdt.base moves with it but the note keeps the old addresses:
 * the difference between the section's sh_addr and the note's base is the
 * correction for pc and semaphore (as systemtap and libbpf do).
 *
 * The note bytes are untrusted.  libelf checks that section data lies in the
 * file and gelf_getnote() that each header's name and desc fit the section;
 * a header that does not fit ends its walk early, which we report as a
 * corrupt note rather than silently dropping the rest.  Inside the desc,
 * every string must end before the desc does.
 *
 * Arguments: one space-separated operand per argument, "SIZE@OPERAND" in
 * AT&T syntax, as the compiler printed the asm operand of constraint "nor":
 *
 *   -4@%edi            register (any width; %ah..%dh are bits 8..15)
 *   4@$5  -4@$-3       constant
 *   8@-8(%rbp)         memory: disp(base,index,scale), each part optional
 *   8@(%rax,%rbx,8)    with an index register
 *   8@(,%rax,8)        index without base
 *   -4@var(%rip)       a global: the symbol's address (lookup callback)
 *   8@var+16(%rip)     ... plus an offset (gcc also prints 16+var(%rip))
 *   8@16(%rip)         rip-relative number: relative to the next instruction
 *   8@arr(,%rax,8)     non-PIC code: a symbol as the displacement
 *
 * SIZE is 1, 2, 4 or 8; negative means signed.  The evaluator reads the
 * operand as the program would have and extends it to 64 bits.
 */
#include "usdt.h"
#include "heap.h"

#include "insn.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <libelf.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOTE_SECTION  ".note.stapsdt"
#define BASE_SECTION  ".stapsdt.base"
#define NOTE_OWNER    "stapsdt"
#define NT_STAPSDT    3
#define MAX_SYMBOL    256          /* longest symbol name in an operand */

/* The evaluator indexes struct selfprobe_regs by enum sp_gpr. */
_Static_assert(offsetof(struct selfprobe_regs, r15) == SP_R15 * 8, "regs layout");
_Static_assert(offsetof(struct selfprobe_regs, rdi) == SP_RDI * 8, "regs layout");
_Static_assert(offsetof(struct selfprobe_regs, rsp) == SP_RSP * 8, "regs layout");

static void fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- notes -------------------------------------------------------------- */

void sp_usdt_free(struct sp_usdt_notes *notes)
{
	if (!notes)
		return;
	for (size_t i = 0; i < notes->n; i++) {
		sp_free(notes->v[i].provider);
		sp_free(notes->v[i].name);
		sp_free(notes->v[i].args);
	}
	sp_free(notes->v);
	notes->v = NULL;
	notes->n = 0;
}

static uint64_t get_addr(const unsigned char *p, size_t width)
{
	uint64_t v64;
	uint32_t v32;

	if (width == 8) {
		memcpy(&v64, p, 8);
		return v64;
	}
	memcpy(&v32, p, 4);
	return v32;
}

/* The next NUL-terminated string at *POS in DESC[0..LEN), or NULL when it
 * does not end inside the desc. */
static const char *next_string(const unsigned char *desc, size_t len, size_t *pos)
{
	const char *s = (const char *)desc + *pos;
	const void *nul;

	if (*pos >= len)
		return NULL;
	nul = memchr(s, '\0', len - *pos);
	if (!nul)
		return NULL;
	*pos = (size_t)((const unsigned char *)nul - desc) + 1;
	return s;
}

static int push_note(struct sp_usdt_notes *out, size_t *cap, const struct sp_usdt_note *n)
{
	struct sp_usdt_note *v;
	struct sp_usdt_note copy = *n;

	if (out->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;

		v = sp_realloc(out->v, ncap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		out->v = v;
		*cap = ncap;
	}
	copy.provider = sp_strdup(n->provider);
	copy.name = sp_strdup(n->name);
	copy.args = sp_strdup(n->args);
	if (!copy.provider || !copy.name || !copy.args) {
		sp_free(copy.provider);
		sp_free(copy.name);
		sp_free(copy.args);
		return -ENOMEM;
	}
	out->v[out->n++] = copy;
	return 0;
}

/* Decode one stapsdt desc into N (strings point into DESC).  INDEX names the
 * note in messages. */
static int decode_desc(const unsigned char *desc, size_t len, size_t width,
		       struct sp_usdt_note *n, const char *path, size_t index,
		       char *err, size_t errlen)
{
	size_t pos = 3 * width;

	if (len < pos) {
		fail(err, errlen, "usdt: corrupt note %zu in '%s': desc of %zu bytes, "
		     "shorter than its three addresses", index, path, len);
		return -EINVAL;
	}
	n->pc = get_addr(desc, width);
	n->base = get_addr(desc + width, width);
	n->semaphore = get_addr(desc + 2 * width, width);
	n->provider = (char *)next_string(desc, len, &pos);
	n->name = n->provider ? (char *)next_string(desc, len, &pos) : NULL;
	n->args = n->name ? (char *)next_string(desc, len, &pos) : NULL;
	if (!n->args) {
		fail(err, errlen, "usdt: corrupt note %zu in '%s': %s string not "
		     "terminated inside the desc", index, path,
		     !n->provider ? "provider" : !n->name ? "name" : "argument");
		return -EINVAL;
	}
	if (!n->provider[0] || !n->name[0]) {
		fail(err, errlen, "usdt: corrupt note %zu in '%s': empty provider or name",
		     index, path);
		return -EINVAL;
	}
	return 0;
}

/* Walk one .note.stapsdt section.  *INDEX counts stapsdt notes over the file. */
static int read_section(Elf_Scn *scn, size_t width, bool have_base, uint64_t base_addr,
			struct sp_usdt_notes *out, size_t *cap, size_t *index,
			const char *path, char *err, size_t errlen)
{
	Elf_Data *data = elf_getdata(scn, NULL);
	size_t off = 0, next, name_off, desc_off;
	GElf_Nhdr nh;

	if (!data) {
		fail(err, errlen, "usdt: cannot read %s of '%s': %s", NOTE_SECTION, path,
		     elf_errmsg(-1));
		return -EINVAL;
	}
	if (data->d_type != ELF_T_NHDR && data->d_type != ELF_T_NHDR8) {
		fail(err, errlen, "usdt: %s of '%s' is not note data", NOTE_SECTION, path);
		return -EINVAL;
	}
	while (off < data->d_size) {
		struct sp_usdt_note n = { 0 };
		int rc;

		next = gelf_getnote(data, off, &nh, &name_off, &desc_off);
		if (next == 0) {
			/* The header, name or desc runs past the section end. */
			fail(err, errlen, "usdt: corrupt note %zu in '%s': header at offset "
			     "%zu of %s does not fit the section", *index, path, off,
			     NOTE_SECTION);
			return -EINVAL;
		}
		off = next;
		/* gelf_getnote checked name_off + n_namesz and desc_off + n_descsz. */
		if (nh.n_type != NT_STAPSDT || nh.n_namesz != sizeof(NOTE_OWNER) ||
		    memcmp((const char *)data->d_buf + name_off, NOTE_OWNER,
			   sizeof(NOTE_OWNER)) != 0)
			continue;   /* not ours: other owners may share a note section */
		rc = decode_desc((const unsigned char *)data->d_buf + desc_off, nh.n_descsz,
				 width, &n, path, *index, err, errlen);
		if (rc < 0)
			return rc;
		if (have_base && n.base != base_addr) {
			/* Prelinked or moved: shift by how far .stapsdt.base moved. */
			uint64_t delta = base_addr - n.base;

			n.pc += delta;
			if (n.semaphore)
				n.semaphore += delta;
		}
		rc = push_note(out, cap, &n);
		if (rc < 0) {
			fail(err, errlen, "usdt: out of memory reading '%s'", path);
			return rc;
		}
		(*index)++;
	}
	return 0;
}

/* The sh_addr of .stapsdt.base, if the file has one. */
static int find_base(Elf *elf, size_t shstrndx, bool *have, uint64_t *addr)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;

	*have = false;
	while ((scn = elf_nextscn(elf, scn))) {
		const char *name;

		if (!gelf_getshdr(scn, &sh))
			return -EINVAL;
		name = elf_strptr(elf, shstrndx, sh.sh_name);
		if (name && strcmp(name, BASE_SECTION) == 0) {
			*have = true;
			*addr = sh.sh_addr;
			return 0;
		}
	}
	return 0;
}

/* libelf silently shows no sections when the section header table lies
 * past the end of the file (a truncated file): check it fits. */
static int check_shdrs(Elf *elf, uint64_t file_size)
{
	GElf_Ehdr eh;

	if (!gelf_getehdr(elf, &eh))
		return -EINVAL;
	if (eh.e_shoff == 0)
		return 0;
	if (eh.e_shoff > file_size || eh.e_shentsize == 0 ||
	    (file_size - eh.e_shoff) / eh.e_shentsize < eh.e_shnum)
		return -EINVAL;
	return 0;
}

static int read_elf(Elf *elf, uint64_t file_size, const char *path,
		    struct sp_usdt_notes *out, char *err, size_t errlen)
{
	size_t shstrndx, cap = 0, index = 0, width;
	Elf_Scn *scn = NULL;
	const char *ident;
	uint64_t base_addr = 0;
	bool have_base;
	GElf_Shdr sh;
	int rc;

	if (elf_kind(elf) != ELF_K_ELF) {
		fail(err, errlen, "usdt: '%s' is not an ELF file", path);
		return -EINVAL;
	}
	ident = elf_getident(elf, NULL);
	if (!ident || (ident[EI_CLASS] != ELFCLASS64 && ident[EI_CLASS] != ELFCLASS32)) {
		fail(err, errlen, "usdt: '%s': unknown ELF class", path);
		return -EINVAL;
	}
	/* The addresses in a desc are raw bytes in the file's byte order. */
	if (ident[EI_DATA] != ELFDATA2LSB) {
		fail(err, errlen, "usdt: '%s': not a little-endian ELF file", path);
		return -EINVAL;
	}
	width = ident[EI_CLASS] == ELFCLASS64 ? 8 : 4;
	if (check_shdrs(elf, file_size) < 0) {
		fail(err, errlen, "usdt: '%s': section headers outside the file (truncated?)",
		     path);
		return -EINVAL;
	}
	if (elf_getshdrstrndx(elf, &shstrndx) != 0) {
		fail(err, errlen, "usdt: '%s': no section names: %s", path, elf_errmsg(-1));
		return -EINVAL;
	}
	if (find_base(elf, shstrndx, &have_base, &base_addr) < 0) {
		fail(err, errlen, "usdt: '%s': bad section header: %s", path, elf_errmsg(-1));
		return -EINVAL;
	}
	while ((scn = elf_nextscn(elf, scn))) {
		const char *name;

		if (!gelf_getshdr(scn, &sh)) {
			fail(err, errlen, "usdt: '%s': bad section header: %s", path,
			     elf_errmsg(-1));
			return -EINVAL;
		}
		if (sh.sh_type != SHT_NOTE)
			continue;
		name = elf_strptr(elf, shstrndx, sh.sh_name);
		if (!name || strcmp(name, NOTE_SECTION) != 0)
			continue;
		rc = read_section(scn, width, have_base, base_addr, out, &cap, &index,
				  path, err, errlen);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int sp_usdt_read(const char *path, struct sp_usdt_notes *out, char *err, size_t errlen)
{
	struct stat st;
	Elf *elf;
	int fd, rc;

	out->v = NULL;
	out->n = 0;
	if (elf_version(EV_CURRENT) == EV_NONE) {
		fail(err, errlen, "usdt: libelf: %s", elf_errmsg(-1));
		return -EINVAL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		fail(err, errlen, "usdt: cannot open '%s': %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		fail(err, errlen, "usdt: cannot stat '%s': %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf) {
		fail(err, errlen, "usdt: '%s': %s", path, elf_errmsg(-1));
		close(fd);
		return -EINVAL;
	}
	rc = read_elf(elf, (uint64_t)st.st_size, path, out, err, errlen);
	elf_end(elf);
	close(fd);
	if (rc < 0)
		sp_usdt_free(out);
	return rc;
}

/* ---- argument parsing --------------------------------------------------- */

struct reg_name {
	const char *name;
	int8_t reg;            /* enum sp_gpr */
	uint8_t bytes, shift;
};

/* Every general-purpose register name gas accepts on x86-64. */
static const struct reg_name reg_names[] = {
	{ "rax", SP_RAX, 8, 0 }, { "eax", SP_RAX, 4, 0 }, { "ax", SP_RAX, 2, 0 },
	{ "al", SP_RAX, 1, 0 }, { "ah", SP_RAX, 1, 8 },
	{ "rbx", SP_RBX, 8, 0 }, { "ebx", SP_RBX, 4, 0 }, { "bx", SP_RBX, 2, 0 },
	{ "bl", SP_RBX, 1, 0 }, { "bh", SP_RBX, 1, 8 },
	{ "rcx", SP_RCX, 8, 0 }, { "ecx", SP_RCX, 4, 0 }, { "cx", SP_RCX, 2, 0 },
	{ "cl", SP_RCX, 1, 0 }, { "ch", SP_RCX, 1, 8 },
	{ "rdx", SP_RDX, 8, 0 }, { "edx", SP_RDX, 4, 0 }, { "dx", SP_RDX, 2, 0 },
	{ "dl", SP_RDX, 1, 0 }, { "dh", SP_RDX, 1, 8 },
	{ "rsi", SP_RSI, 8, 0 }, { "esi", SP_RSI, 4, 0 }, { "si", SP_RSI, 2, 0 },
	{ "sil", SP_RSI, 1, 0 },
	{ "rdi", SP_RDI, 8, 0 }, { "edi", SP_RDI, 4, 0 }, { "di", SP_RDI, 2, 0 },
	{ "dil", SP_RDI, 1, 0 },
	{ "rbp", SP_RBP, 8, 0 }, { "ebp", SP_RBP, 4, 0 }, { "bp", SP_RBP, 2, 0 },
	{ "bpl", SP_RBP, 1, 0 },
	{ "rsp", SP_RSP, 8, 0 }, { "esp", SP_RSP, 4, 0 }, { "sp", SP_RSP, 2, 0 },
	{ "spl", SP_RSP, 1, 0 },
};

/* %r8 .. %r15 with their d/w/b suffixes (gas also takes 'l' for the byte). */
static int parse_rn(const char *s, size_t len, int *reg, uint8_t *bytes)
{
	static const int8_t rn[8] = { SP_R8, SP_R9, SP_R10, SP_R11, SP_R12, SP_R13, SP_R14, SP_R15 };
	size_t i = 1;
	unsigned num = 0;

	if (len < 2 || s[0] != 'r' || !isdigit((unsigned char)s[1]))
		return -1;
	while (i < len && isdigit((unsigned char)s[i]) && i < 3)
		num = num * 10 + (unsigned)(s[i++] - '0');
	if (num < 8 || num > 15 || (s[1] == '0'))
		return -1;
	if (i == len)
		*bytes = 8;
	else if (i + 1 == len && s[i] == 'd')
		*bytes = 4;
	else if (i + 1 == len && s[i] == 'w')
		*bytes = 2;
	else if (i + 1 == len && (s[i] == 'b' || s[i] == 'l'))
		*bytes = 1;
	else
		return -1;
	*reg = rn[num - 8];
	return 0;
}

/* Register name S[0..LEN) (without '%').  0, or -1 when unknown. */
static int lookup_reg(const char *s, size_t len, int *reg, uint8_t *bytes, uint8_t *shift)
{
	for (size_t i = 0; i < sizeof(reg_names) / sizeof(reg_names[0]); i++) {
		if (strlen(reg_names[i].name) == len && memcmp(reg_names[i].name, s, len) == 0) {
			*reg = reg_names[i].reg;
			*bytes = reg_names[i].bytes;
			*shift = reg_names[i].shift;
			return 0;
		}
	}
	*shift = 0;
	return parse_rn(s, len, reg, bytes);
}

/* One operand being parsed: P walks it, END bounds it. */
struct cursor {
	const char *p, *end;
};

static bool at(const struct cursor *c, char ch)
{
	return c->p < c->end && *c->p == ch;
}

/* "%name" at the cursor. */
static int take_reg(struct cursor *c, int *reg, uint8_t *bytes, uint8_t *shift)
{
	const char *s;

	if (!at(c, '%'))
		return -1;
	s = ++c->p;
	while (c->p < c->end && isalnum((unsigned char)*c->p))
		c->p++;
	if (c->p - s == 3 && memcmp(s, "rip", 3) == 0) {
		*reg = SP_RIP_BASE;
		*bytes = 8;
		*shift = 0;
		return 0;
	}
	return lookup_reg(s, (size_t)(c->p - s), reg, bytes, shift);
}

/* An integer as gas reads it: optional sign, then decimal, 0x hex, 0b binary
 * or 0-prefixed octal.  Overflow past 64 bits is an error. */
static int take_int(struct cursor *c, int64_t *out)
{
	bool neg = false;
	unsigned base = 10;
	uint64_t v = 0;
	const char *start;

	if (at(c, '-') || at(c, '+'))
		neg = *c->p++ == '-';
	if (c->p >= c->end || !isdigit((unsigned char)*c->p))
		return -1;
	if (*c->p == '0' && c->p + 1 < c->end) {
		char x = (char)tolower((unsigned char)c->p[1]);

		if (x == 'x' || x == 'b') {
			base = x == 'x' ? 16 : 2;
			c->p += 2;
		} else if (isdigit((unsigned char)x)) {
			base = 8;
			c->p++;
		}
	}
	start = c->p;
	while (c->p < c->end && isxdigit((unsigned char)*c->p)) {
		char ch = (char)tolower((unsigned char)*c->p);
		unsigned d = isdigit((unsigned char)ch) ? (unsigned)(ch - '0') : (unsigned)(ch - 'a' + 10);

		if (d >= base)
			return -1;
		if (v > (UINT64_MAX - d) / base)
			return -1;
		v = v * base + d;
		c->p++;
	}
	if (c->p == start)
		return -1;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

/* gas symbol characters; '$' only inside (a leading one means a constant). */
static bool sym_start(char ch)
{
	return isalpha((unsigned char)ch) || ch == '_' || ch == '.';
}

static bool sym_char(char ch)
{
	return sym_start(ch) || isdigit((unsigned char)ch) || ch == '$';
}

/* "sym", "sym+N" or "sym-N" at the cursor, resolved through LOOKUP. */
static int take_symbol(struct cursor *c, sp_usdt_lookup_fn lookup, void *ctx,
		       int64_t *out, const char **why)
{
	char name[MAX_SYMBOL];
	const char *s = c->p;
	int64_t off = 0;
	uint64_t addr;
	size_t len;

	while (c->p < c->end && sym_char(*c->p))
		c->p++;
	len = (size_t)(c->p - s);
	if (len >= sizeof(name)) {
		*why = "symbol name too long";
		return -1;
	}
	memcpy(name, s, len);
	name[len] = '\0';
	if (at(c, '+') || at(c, '-')) {
		if (take_int(c, &off) < 0) {
			*why = "bad offset after symbol";
			return -1;
		}
	}
	if (!lookup) {
		*why = "symbol operand and no symbol lookup";
		return -1;
	}
	if (lookup(name, ctx, &addr) < 0) {
		*why = "symbol not found";
		return -1;
	}
	*out = (int64_t)(addr + (uint64_t)off);
	return 0;
}

/* "(base,index,scale)" after the displacement; base, index and scale are
 * each optional ("(%rax)", "(,%rax,8)", "(%rax,%rbx)"). */
static int take_memref(struct cursor *c, struct sp_usdt_arg *a, const char **why)
{
	uint8_t bytes, shift;
	int64_t scale = 1;

	c->p++;  /* '(' */
	if (!at(c, ',')) {
		if (take_reg(c, &a->reg, &bytes, &shift) < 0 || bytes != 8) {
			*why = "bad base register";
			return -1;
		}
	}
	if (at(c, ',')) {
		c->p++;
		if (take_reg(c, &a->index, &bytes, &shift) < 0 || bytes != 8 ||
		    a->index == SP_RIP_BASE || a->index == SP_RSP) {
			*why = "bad index register";
			return -1;
		}
		if (at(c, ',')) {
			c->p++;
			if (take_int(c, &scale) < 0 ||
			    (scale != 1 && scale != 2 && scale != 4 && scale != 8)) {
				*why = "bad scale";
				return -1;
			}
		}
	}
	if (!at(c, ')')) {
		*why = "expected ')'";
		return -1;
	}
	c->p++;
	if (a->reg == -1 && a->index == -1) {
		*why = "no register in memory operand";
		return -1;
	}
	if (a->reg == SP_RIP_BASE && a->index != -1) {
		*why = "%rip with an index";
		return -1;
	}
	a->scale = (uint8_t)scale;
	return 0;
}

/* Operand after "SIZE@": register, constant or memory. */
static int parse_operand(struct cursor *c, struct sp_usdt_arg *a, sp_usdt_lookup_fn lookup,
			 void *ctx, const char **why)
{
	bool symbolic = false;
	int64_t disp = 0;

	if (at(c, '%') && c->end - c->p >= 5 && memcmp(c->p, "%xmm", 4) == 0) {   /* 8f@%xmm0 */
		const char *d = c->p + 4;
		int n = 0, digits = 0;
		for (; d < c->end && *d >= '0' && *d <= '9' && digits < 3; d++, digits++)
			n = n * 10 + (*d - '0');
		if (digits == 0 || n > 15 || (digits > 1 && c->p[4] == '0')) {
			*why = "unknown register";
			return -1;
		}
		a->kind = SP_USDT_XMM;
		a->reg = n;
		c->p = d;
		return 0;
	}
	if (at(c, '%')) {                              /* -4@%eax, 1@%ah */
		a->kind = SP_USDT_REG;
		if (take_reg(c, &a->reg, &a->reg_bytes, &a->reg_shift) < 0 ||
		    a->reg == SP_RIP_BASE) {
			*why = "unknown register";
			return -1;
		}
		return 0;
	}
	if (at(c, '$')) {                              /* 4@$5, -4@$-3, 8@$sym */
		c->p++;
		a->kind = SP_USDT_CONST;
		if (c->p < c->end && sym_start(*c->p))
			return take_symbol(c, lookup, ctx, &a->value, why);
		if (take_int(c, &a->value) < 0) {
			*why = "bad constant";
			return -1;
		}
		return 0;
	}
	/* Memory: [disp](...) or a bare absolute address.  The displacement is
	 * a number, a symbol, "sym+N"/"sym-N", or "N+sym" as gcc prints an
	 * array element of a global (-8@16+g_arr(%rip)). */
	if (c->p < c->end && sym_start(*c->p)) {       /* var(%rip) */
		if (take_symbol(c, lookup, ctx, &disp, why) < 0)
			return -1;
		symbolic = true;
	} else if (!at(c, '(')) {                      /* -8(%rbp) */
		if (take_int(c, &disp) < 0) {
			*why = "bad operand";
			return -1;
		}
		if (at(c, '+') && c->p + 1 < c->end && sym_start(c->p[1])) {
			int64_t addr;                  /* 16+g_arr(%rip) */

			c->p++;
			if (take_symbol(c, lookup, ctx, &addr, why) < 0)
				return -1;
			disp = (int64_t)((uint64_t)disp + (uint64_t)addr);
			symbolic = true;
		}
	}
	if (!at(c, '(')) {                             /* 8@0x601040, 8@var: absolute */
		a->kind = SP_USDT_ABS;
		a->value = disp;
		return 0;
	}
	a->kind = SP_USDT_MEM;
	if (take_memref(c, a, why) < 0)
		return -1;
	if (a->reg == SP_RIP_BASE && symbolic) {
		/* var(%rip) names var itself; the lookup gave its runtime address. */
		a->kind = SP_USDT_ABS;
		a->value = disp;
		a->reg = -1;
		a->scale = 0;
		return 0;
	}
	a->disp = disp;
	return 0;
}

/* One "SIZE@OPERAND" in [S, E). */
static int parse_one(const char *s, const char *e, struct sp_usdt_arg *a,
		     sp_usdt_lookup_fn lookup, void *ctx, const char **why)
{
	struct cursor c = { s, e };
	int64_t size;

	memset(a, 0, sizeof(*a));
	a->reg = -1;
	a->index = -1;
	/* The size is required: libbpf and bpftrace read no other form. */
	/* SIZE is decimal: take_int would read the f of "8f@" as a hex digit */
	bool neg = at(&c, '-');
	if (neg)
		c.p++;
	if (c.p >= c.end || !isdigit((unsigned char)*c.p)) {
		*why = "expected SIZE@";
		return -1;
	}
	for (size = 0; c.p < c.end && isdigit((unsigned char)*c.p) && size < 100; c.p++)
		size = size * 10 + (*c.p - '0');
	if (neg)
		size = -size;
	if (at(&c, 'f')) {                 /* sys/sdt.h's floating types: 4f@, 8f@ */
		c.p++;
		a->is_float = true;
	}
	if (!at(&c, '@')) {
		*why = "expected SIZE@";
		return -1;
	}
	if (size != 1 && size != 2 && size != 4 && size != 8 &&
	    size != -1 && size != -2 && size != -4 && size != -8) {
		*why = "size not 1, 2, 4 or 8";
		return -1;
	}
	if (a->is_float) {
		if (size != 4 && size != 8 && size != -4 && size != -8) {
			*why = "a float's size is not 4 or 8";
			return -1;
		}
		size = size < 0 ? -size : size;   /* the bits, not a signed integer */
	}
	a->size = (int8_t)size;
	c.p++;  /* '@' */
	if (parse_operand(&c, a, lookup, ctx, why) < 0)
		return -1;
	if (a->kind == SP_USDT_XMM && !a->is_float) {
		*why = "a vector register holds a float argument (4f@ or 8f@)";
		return -1;
	}
	if (c.p != c.end) {
		*why = "trailing characters";
		return -1;
	}
	return 0;
}

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n';
}

int sp_usdt_parse_args(const char *spec, struct sp_usdt_arg *args, int max,
		       sp_usdt_lookup_fn lookup, void *ctx, char *err, size_t errlen)
{
	const char *p = spec ? spec : "";
	int n = 0;

	if (max > SP_USDT_MAX_ARGS)
		max = SP_USDT_MAX_ARGS;
	for (;;) {
		const char *s, *why = NULL;
		struct sp_usdt_arg tmp;

		while (is_space(*p))
			p++;
		if (!*p)
			return n;
		s = p;
		while (*p && !is_space(*p))
			p++;
		if (n >= max) {
			fail(err, errlen, "usdt: more than %d arguments in \"%s\"", max, spec);
			return -EINVAL;
		}
		if (parse_one(s, p, &tmp, lookup, ctx, &why) < 0) {
			fail(err, errlen, "usdt: argument %d \"%.*s\": %s", n + 1,
			     (int)(p - s), s, why);
			return -EINVAL;
		}
		args[n++] = tmp;
	}
}

/* ---- evaluation (signal-safe: no libc) ----------------------------------- */

static uint64_t reg_value(const struct selfprobe_regs *regs, int reg)
{
	const uint64_t *r = (const uint64_t *)regs;

	if (reg < 0 || (size_t)reg >= sizeof(*regs) / sizeof(uint64_t))
		return 0;
	return r[reg];
}

/* V truncated to SIZE bytes (|size|), sign-extended when SIZE < 0. */
static int64_t extend(uint64_t v, int size)
{
	switch (size) {
	case 1:  return (int64_t)(uint8_t)v;
	case -1: return (int8_t)(uint8_t)v;
	case 2:  return (int64_t)(uint16_t)v;
	case -2: return (int16_t)(uint16_t)v;
	case 4:  return (int64_t)(uint32_t)v;
	case -4: return (int32_t)(uint32_t)v;
	default: return (int64_t)v;
	}
}

/* SIZE bytes at ADDR.  __builtin_memcpy of a constant size is one load, no
 * call, and keeps an unaligned access defined. */
static uint64_t load(uint64_t addr, int size)
{
	const void *p = (const void *)(uintptr_t)addr;
	uint8_t b;
	uint16_t h;
	uint32_t w;
	uint64_t q;

	switch (size < 0 ? -size : size) {
	case 1:  __builtin_memcpy(&b, p, 1); return b;
	case 2:  __builtin_memcpy(&h, p, 2); return h;
	case 4:  __builtin_memcpy(&w, p, 4); return w;
	default: __builtin_memcpy(&q, p, 8); return q;
	}
}

int64_t sp_usdt_eval(const struct sp_usdt_arg *arg, const struct selfprobe_regs *regs,
		     uint64_t rip_next, const void *fpstate)
{
	uint64_t v, addr;

	switch (arg->kind) {
	case SP_USDT_XMM:
		if (!fpstate || arg->reg < 0 || arg->reg > 15)
			return 0;
		return extend(load((uint64_t)(uintptr_t)fpstate + 160 + 16 * (uint64_t)arg->reg, arg->size),
			      arg->size);
	case SP_USDT_CONST:
		return extend((uint64_t)arg->value, arg->size);
	case SP_USDT_REG:
		v = reg_value(regs, arg->reg) >> arg->reg_shift;
		/* The register's own width first (%eax of rax), then the note's size. */
		if (arg->reg_bytes < 8)
			v &= (UINT64_C(1) << (arg->reg_bytes * 8)) - 1;
		return extend(v, arg->size);
	case SP_USDT_MEM:
		addr = arg->reg == SP_RIP_BASE ? rip_next : reg_value(regs, arg->reg);
		if (arg->index >= 0)
			addr += reg_value(regs, arg->index) * arg->scale;
		addr += (uint64_t)arg->disp;
		return extend(load(addr, arg->size), arg->size);
	case SP_USDT_ABS:
		return extend(load((uint64_t)arg->value, arg->size), arg->size);
	}
	return 0;
}

double sp_usdt_float(const struct sp_usdt_arg *arg, int64_t bits)
{
	if (arg->size == 4) {
		float f;
		uint32_t w = (uint32_t)bits;
		__builtin_memcpy(&f, &w, 4);
		return f;
	}
	double d;
	__builtin_memcpy(&d, &bits, 8);
	return d;
}
