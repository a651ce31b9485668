/* bt — bpftrace one-liners run in the process (issue 18).
 *
 * A program text (`uprobe:libc:malloc /arg0 > 4096/ { @big = count(); }`)
 * goes through four modules, each with one job:
 *   bt_parse.c    text -> syntax tree, every error with line and column;
 *   bt_compile.c  the tree checked and resolved once, before anything is
 *                 attached: builtins, types, maps (their types and keys),
 *                 scratch variables; anything outside the subset refused;
 *   bt_eval.c     a block run on a hit, in the handler context (both
 *                 paths), on the resolved tree: no text, no lookup by name,
 *                 no allocation;
 *   bt_map.c      maps: fixed-capacity hash tables made at compile time,
 *                 updated with atomics, a dropped-update count when full;
 *   bt_shard.c    a map's per-thread parts (a compiled block's, a keyed
 *                 map the program never reads back) and their merge;
 *   bt_out.c      printf formats and bpftrace's text and JSON output of maps;
 *   bt_dwarf.c    args.NAME: a parameter's register from DWARF (libdw).
 * spec.c ties a program to the spec (its probes become spec items) and
 * to the runtime (handler, output at exit).
 */
#ifndef SP_BT_H
#define SP_BT_H

#include "fdid.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BT_STR 64            /* bpftrace's default string size */
#define BT_MAX_KEYS 8
#define BT_MAX_ARGS 16       /* printf's arguments */
#define BT_MAX_VARS 16
#define BT_HIST_BUCKETS 65   /* bpftrace 0.17's log2 buckets */
#define BT_MAP_CAP 4096      /* entries per keyed map (bpftrace's default) */
/* How long a hit waits for another thread writing its key's slot (bt_map.c):
 * far past a preemption under load, bounded for a write that never ends */
#define BT_MAP_BUSY_WAIT_MS 500
#define BT_USTACK_MAX 127    /* ustack's frames (bpftrace's default) */
/* A ustack in a key or value: a depth word, then the frames. */
#define BT_STACK_BYTES(depth) (8 * (size_t)(1 + (depth)))
/* A map key's bytes at most: every key a string, or two full stacks. */
#define BT_KEY_MAX (BT_MAX_KEYS * BT_STR + 2 * BT_STACK_BYTES(BT_USTACK_MAX))

/* --------------------------------------------------------- syntax tree */

enum bt_nk {
	/* expressions */
	BN_INT, BN_STR, BN_BUILTIN, BN_VAR, BN_MAP, BN_BIN, BN_UN, BN_TERN, BN_CALL,
	/* statements */
	BN_EXPR, BN_ASSIGN, BN_INCR, BN_IF, BN_DELETE,
	/* args.NAME / args->NAME: name is NAME; resolved to an argument
	 * register by the args resolver (bt_set_args_resolver) */
	BN_ARGS,
};

enum bt_builtin {
	BB_ARG0, BB_ARG7 = BB_ARG0 + 7, BB_RETVAL, BB_PID, BB_TID, BB_COMM, BB_FUNC, BB_PROBE,
	BB_NSECS, BB_CPU, BB_USTACK,
};

enum bt_type { BT_NONE, BT_INT, BT_STRT, BT_STACKT };

/* Map value kinds: what the map was first assigned. */
enum bt_mk { BM_NONE, BM_INT, BM_STR, BM_COUNT, BM_SUM, BM_MIN, BM_MAX, BM_AVG, BM_STATS, BM_HIST, BM_LHIST,
	     BM_STACK };

struct bt_map;

struct bt_node {
	enum bt_nk kind;
	int line, col;
	int op;                  /* BN_BIN/BN_UN: operator token; BN_INCR: +1/-1 */
	int64_t ival;            /* BN_INT; BN_BUILTIN: enum bt_builtin; BN_VAR: slot */
	char *name;              /* BN_STR text, BN_VAR/BN_MAP/BN_CALL name */
	size_t slen;             /* BN_STR length */
	struct bt_node *a, *b, *c;   /* operands; BN_IF: cond, then, else; BN_ASSIGN: lhs, rhs */
	struct bt_node **args;   /* BN_CALL arguments, BN_MAP keys, block statements */
	int nargs;
	/* filled by the compiler */
	enum bt_type type;
	bool is_signed;
	struct bt_map *map;      /* BN_MAP, and calls that name a map */
	int fn;                  /* BN_CALL: enum bt_fn */
	struct bt_fmt *fmt;      /* printf: the parsed format */
	int depth;               /* BT_STACKT: the frames kept (ustack(N)) */
};

struct bt_probe_ast {
	char **probes;           /* probe texts as written */
	int *probe_line, *probe_col;
	int nprobes;
	struct bt_node *pred;    /* or NULL */
	struct bt_node *block;   /* statements in args */
	int line, col;
};

struct bt_ast {
	struct bt_probe_ast *groups;
	int ngroups;
};

struct bt_error {
	int line, col;
	char msg[512];
};

/* Parse TEXT[0..LEN).  0, or -1 with *ERR filled (and *AST freed). */
int bt_parse(const char *text, size_t len, struct bt_ast *ast, struct bt_error *err);
void bt_ast_free(struct bt_ast *ast);
void bt_node_free(struct bt_node *n);
/* Printable name of an operator token (for messages). */
const char *bt_op_name(int op);

/* operator tokens beyond single characters */
enum { BT_OP_EQ = 256, BT_OP_NE, BT_OP_LE, BT_OP_GE, BT_OP_AND, BT_OP_OR, BT_OP_SHL, BT_OP_SHR,
       BT_OP_INC, BT_OP_DEC, BT_OP_ADDEQ, BT_OP_SUBEQ, BT_OP_ARROW };

/* ----------------------------------------------------------------- maps */

struct bt_map {
	char *name;              /* "@x" */
	enum bt_mk mk;
	bool val_signed;         /* sum/min/max/int: the value's sign */
	int nkeys;
	enum bt_type key_type[BT_MAX_KEYS];
	int key_depth[BT_MAX_KEYS];  /* BT_STACKT keys: their frames */
	int val_depth;           /* BM_STACK: the frames */
	size_t key_size;         /* bytes: 8 per int, BT_STR per string */
	size_t val_words;        /* 8-byte words per value */
	int64_t lmin, lmax, lstep;   /* lhist */
	size_t cap;              /* power of two */
	size_t slot_size;        /* state word + key + value, 8-aligned */
	unsigned char *slots;    /* mmap'ed, MAP_NORESERVE */
	_Atomic uint64_t dropped;    /* updates refused: the map was full */
	_Atomic uint64_t unfinished; /* updates refused: their key's insert by
				      * another hit never ended (bt_map.c) */
	_Atomic uint64_t used;
	struct bt_shards *shards;    /* per-thread parts hits add to (bt_shard.h):
				      * a compiled block's, or a keyed map's;
				      * NULL: only the table */
	int shared_at;           /* its number in the launcher's shared file
				  * (the runtime's), or -1 */
	struct bt_map *next;
};

/* The value words for KEY (created when absent and CREATE), or NULL (absent,
 * or full: dropped counted).  Never allocates. */
uint64_t *bt_map_lookup(struct bt_map *m, const void *key, bool create);
/* The same as a slot index (-1: absent, or full), for the per-thread parts
 * of a keyed map (bt_shard.h), which are indexed like the table; and the
 * table's value words of slot I. */
long bt_map_slot(struct bt_map *m, const void *key, bool create);
uint64_t *bt_map_value(struct bt_map *m, size_t i);
void bt_map_delete(struct bt_map *m, const void *key);
void bt_map_clear(struct bt_map *m);
/* Give the table its memory (the map's shape known).  0 or -errno. */
int bt_map_alloc(struct bt_map *m);
void bt_map_free(struct bt_map *m);
/* Iterate live entries: index I from 0; returns the next live slot index
 * >= I or -1, with its key and value. */
long bt_map_next(struct bt_map *m, size_t i, const unsigned char **key, const uint64_t **val);
/* The hist bucket of V (bpftrace 0.17's log2) and the lhist bucket. */
int bt_hist_bucket(int64_t v);
int64_t bt_lhist_bucket(int64_t v, int64_t min, int64_t max, int64_t step);

/* -------------------------------------------------------------- programs */

enum bt_fn {
	BF_COUNT, BF_SUM, BF_AVG, BF_MIN, BF_MAX, BF_STATS, BF_HIST, BF_LHIST,
	BF_STR, BF_PRINTF, BF_PRINT, BF_CLEAR, BF_EXIT, BF_DELETE,
};

/* Blocks that no probe hit runs (bpftrace's special probes). */
enum bt_special { BT_PROBE_HIT, BT_BEGIN, BT_END, BT_INTERVAL };
/* What probe text TEXT is: BT_PROBE_HIT (a spec probe), BT_BEGIN, BT_END,
 * BT_INTERVAL (*INTERVAL_NS set), or -1 with ERR (a bad interval). */
int bt_special_probe(const char *text, int64_t *interval_ns, char *err, size_t errlen);

/* One printf format, split once at compile time. */
struct bt_fmt_piece {
	const char *lit;         /* literal text before the conversion */
	size_t lit_len;
	char conv;               /* 0: none (the tail); 'd','u','x','X','s','c','p','o' */
	bool left, zero, plus, space;
	int width, prec;         /* -1: none */
};
struct bt_fmt {
	char *text;              /* unescaped */
	struct bt_fmt_piece *p;
	int n;
};

struct bt_program;

/* One probe group's code. */
struct bt_block {
	struct bt_program *prog;
	struct bt_node *pred;
	struct bt_node *body;
	bool is_return;          /* attached as uretprobe */
	bool fast;               /* integers only: runs without saving the
				  * vector state (bt_eval.c) */
	bool usdt;               /* attached to usdt probes: argN are the
				  * note's arguments */
	int nvars;
	const uint8_t *native;   /* the block as native code a trampoline
				  * runs (bt_jit.h), or NULL: the evaluator */
	size_t native_len;
	bool native_tried;
	enum bt_special special;
	int64_t interval_ns;     /* BT_INTERVAL: its period */
	const char *name;        /* the group's first probe as written */
};

struct bt_program {
	struct bt_ast ast;
	struct bt_block *blocks; /* one per group */
	int nblocks;
	struct bt_map *maps;     /* in name order */
	int nmaps;
	char *var_names[BT_MAX_VARS];
	enum bt_type var_type[BT_MAX_VARS];
	int nvars;
	_Atomic int refs;
	_Atomic bool exited;     /* exit() ran: no block runs any more */
	struct sp_fdout out;     /* where printf, print and the exit output go:
				  * a copy of stdout, checked before each write
				  * (the program may have closed it and opened
				  * a file of its own at its number); lost:
				  * outputs dropped since then */
	bool active;             /* attached: printed at exit */
	bool ran;                /* a block ran in this process (reset at fork):
				  * only then are its maps printed, so that a
				  * process the probes never hit (a shell's
				  * $(...) child) gets nothing on its stdout */
	struct bt_program *next_active;
	bool json;               /* -f json: printf and maps in bpftrace's JSON lines */
	bool has_special;        /* a BEGIN, END or interval block */
	void *runtime;           /* the runtime's state for it (bt_run.c) */
	bool started;            /* BEGIN ran, interval threads started */
};

/* Compile AST (taken: freed with the program) with each group's probes'
 * kinds: IS_RETURN[g] says group G's probes are return probes (mixing is
 * an error the caller reports), IS_USDT[g] that they are USDT notes (argN
 * read from the note; NULL: none).  0, or -1 with *ERR. */
int bt_compile(struct bt_ast *ast, const bool *is_return, const bool *is_usdt, struct bt_program **out,
	       struct bt_error *err);
void bt_program_release(struct bt_program *p);

/* The evaluator: run block B on a hit.  CTX is the handler's selfprobe_ctx. */
struct selfprobe_ctx;
void bt_run(struct bt_block *b, struct selfprobe_ctx *ctx);
void bt_eval_atfork_child(void);

/* args.NAME: the argument register of parameter PARAM of FUNC in OBJECT
 * (as a spec writes it: NULL for the main program, a path, or a library
 * name), from the object's DWARF.  0 with *INDEX (0..5: rdi..r9) and
 * *IS_SIGNED, or -1 with ERR.  Registered by the runtime: without one
 * (the fuzzers), args.NAME is refused. */
typedef int (*bt_args_fn)(const char *object, const char *func, const char *param, int *index,
			  bool *is_signed, char *err, size_t errlen);
void bt_set_args_resolver(bt_args_fn fn);
/* Register bt_dwarf.c's resolver (libdw). */
void bt_dwarf_register(void);
/* The probe each group's block is compiled for, to resolve args.NAME:
 * OBJECT[g] and FUNC[g] of group G (NULL FUNC: args refused there, with
 * WHY[g]).  Set before bt_compile, cleared after. */
struct bt_args_site {
	const char *object, *func, *why;
};
void bt_set_args_sites(const struct bt_args_site *sites, int n);

/* A user stack's frame as bpftrace prints it ("main+57", "0x7f12…"):
 * registered by the runtime (the stack action's symboliser); without one,
 * addresses in hex. */
typedef void (*bt_sym_fn)(uintptr_t ip, char *buf, size_t len);
void bt_set_symbolizer(bt_sym_fn fn);

/* Output (bt_out.c).  A growing buffer, written out in pieces. */
struct bt_buf {
	char *p;
	size_t n, cap;
	bool fixed;              /* a caller's array: never grown (handler context) */
};
void bt_buf_put(struct bt_buf *b, const char *s, size_t n);
void bt_buf_puts(struct bt_buf *b, const char *s);
void bt_buf_printf(struct bt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Format printf's conversions: VALS[i] is an integer or (STRS[i]) a string. */
void bt_format(struct bt_buf *out, const struct bt_fmt *f, const int64_t *vals, const char *const *strs);
int bt_fmt_parse(const char *text, size_t len, struct bt_fmt **out, char *err, size_t errlen);
void bt_fmt_free(struct bt_fmt *f);
/* A map in bpftrace's text format, as print(@m) and the exit write it. */
void bt_print_map(struct bt_buf *out, struct bt_map *m);
/* Everything at exit: "\n\n" then every map in name order. */
void bt_print_all(struct bt_buf *out, struct bt_program *p);
/* The same in bpftrace's -f json form: one line per map. */
void bt_print_map_json(struct bt_buf *out, struct bt_map *m);
void bt_print_all_json(struct bt_buf *out, struct bt_program *p);
/* A printf's text as bpftrace's JSON line {"type": "printf", ...}. */
void bt_json_printf(struct bt_buf *out, const char *s, size_t n);
/* A stack (depth word, frames) as text: "\n" and a line per frame,
 * indented by INDENT spaces. */
void bt_put_stack(struct bt_buf *out, const uint64_t *stack, int indent);
/* Write all of BUF to FD (retrying short writes). */
void bt_write(int fd, const char *p, size_t n);
/* bt_write to P's output, or, if the program took its number, count it
 * dropped (P->out.lost). */
void bt_output(struct bt_program *p, const char *s, size_t n);

#endif
