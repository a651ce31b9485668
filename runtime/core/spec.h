/* spec — the UPROBE_SPEC parser.  Pure: no process state, no I/O except
 * sp_spec_load() reading an '@FILE'.  Fuzzable.
 *
 *   item     := probe [ '=' action ]
 *   probe    := ('uprobe' | 'uretprobe' | 'usession') ':' [object ':'] location
 *             | 'usdt' ':' [object ':'] provider ':' name
 *   location := symbol-glob [ '+' offset ]  |  '0x' hex ELF virtual address
 *   action   := 'count' | 'latency' | 'trace' | 'stack' | plugin-path ':' function
 *
 * A text holding '{' is a bpftrace program instead (bt_spec.c): each probe
 * of each `probes [/pred/] { block }` group becomes an item whose action is
 * SP_ACT_PROGRAM; any error in the program makes no item at all.
 *
 * Items are separated by ';' or newlines.  Every malformed item becomes an
 * sp_spec_error naming the item and what is wrong; the others still parse.
 */
#ifndef SP_SPEC_H
#define SP_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sp_probe_kind { SP_KIND_UPROBE, SP_KIND_URETPROBE, SP_KIND_USESSION, SP_KIND_USDT };
enum sp_action_kind { SP_ACT_COUNT, SP_ACT_LATENCY, SP_ACT_TRACE, SP_ACT_STACK, SP_ACT_PLUGIN,
		       SP_ACT_PROGRAM /* a block of a bpftrace program (bt.h) */ };

struct sp_spec_item {
	char *text;              /* the item as written, trimmed: the report's "spec" */
	char *probe_text;        /* the probe part only (text before '=') */
	enum sp_probe_kind kind;
	char *object;            /* NULL: the main executable */
	char *provider;          /* usdt only */
	char *name;              /* symbol glob, or the usdt probe name; NULL with an address */
	bool has_offset;
	uint64_t offset;         /* '+offset' after a symbol */
	bool has_address;
	uint64_t address;        /* '0x…' ELF virtual address */
	enum sp_action_kind action;
	char *plugin_path;       /* SP_ACT_PLUGIN */
	char *plugin_fn;
	struct bt_block *program;   /* SP_ACT_PROGRAM: the compiled block; the
				     * item holds a reference to its program */
	bool internal;           /* never set by the parser: the runtime's own
				  * probes, at addresses it knows to be
				  * instruction starts even outside any symbol */
};

struct bt_block;

struct sp_spec_error {
	char *item;              /* the offending item as written */
	char *message;           /* what is wrong with it */
};

struct sp_spec {
	struct sp_spec_item *items;
	size_t n_items;
	struct sp_spec_error *errors;
	size_t n_errors;
};

/* Parse TEXT.  0, or -ENOMEM (OUT is then empty).  OUT must be zeroed or
 * previously freed; results are appended. */
int sp_spec_parse(const char *text, struct sp_spec *out);
/* Parse a single probe (no '=action' allowed), as selfprobe_attach takes. */
int sp_spec_parse_probe(const char *text, struct sp_spec_item *item, char **err);
/* Like sp_spec_parse, but TEXT "@FILE" reads the items from FILE, where '#'
 * starts a comment running to the end of the line. */
int sp_spec_load(const char *text, struct sp_spec *out);
/* The spec file PATH's contents, as "@PATH" reads them (size limit, no NUL
 * byte): 0 (*TEXT malloc'ed, NUL-terminated), -EINVAL with *MSG (malloc'ed)
 * naming the file and why it cannot be used, or -ENOMEM. */
int sp_spec_read_file(const char *path, char **text, char **msg);
/* Whether TEXT is a bpftrace program rather than items (it holds a '{'). */
bool sp_spec_is_program(const char *text);
/* A file's items (no program) as a spec without '@': each '#' comment,
 * which only a file may hold, blanked in place; lines stay where they were. */
void sp_spec_blank_comments(char *text);
void sp_spec_item_free(struct sp_spec_item *it);
void sp_spec_free(struct sp_spec *s);

/* bt_spec.c: parse and compile the program TEXT[0..LEN) into OUT. */
int sp_bt_parse_spec(const char *text, size_t len, struct sp_spec *out);
void sp_bt_item_release(struct bt_block *b);

const char *sp_kind_name(enum sp_probe_kind k);
const char *sp_action_name(enum sp_action_kind a);

#endif
