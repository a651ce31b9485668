/* shm — counters the launcher can read even when the program cannot write
 * a report (SIGKILL, a crash, _exit from a place we do not see).
 *
 * `selfprobe run` creates a memfd and names it in SELFPROBE_SHM as a path
 * that reopens it (/proc/LAUNCHER/fd/N): the descriptor itself is
 * close-on-exec and never inherited, and no probed process keeps one open —
 * the program sees no descriptor of ours (a process that changed user
 * before its exec, refused that name, gets the descriptor from the
 * launcher's socket instead: cli/shmserve.h).  Every probed process (the
 * program, its fork children, the programs they exec) opens the file, claims
 * a section of it and maps what it needs, then closes it again; a fork child
 * reopens it for its own section.  A section holds a descriptor (pid,
 * command, state), a table of probe records (spec, label, kind, path…,
 * and the final counts of detached probes), its counter stripes
 * themselves — tstate maps them from the file instead of anonymous memory,
 * so the hot path is unchanged and every hit is in the file the moment it
 * is counted — its threads' timeline buffers (timeline.h), and at a normal
 * exit the process's full reports (JSON and text), so that nothing of ours
 * is ever left on disk.  The file is sparse: only touched pages cost memory.
 * Its arrays of records, errors and objects are sized for the most a
 * process may need (the records: 107 MiB); a process maps them in chunks
 * as it fills them (shmchunks.h), so that its address space — what
 * RLIMIT_AS limits — grows with the probes it has.
 *
 * Without the launcher, a runtime that serves the control channel
 * (runtime/api/control.h) makes a file of its own in the same layout, with
 * one section (sp_shm_want_own): its counters, records and errors live
 * there as they would in the launcher's, and the channel hands the file to
 * `selfprobe attach`/`top`, which read the counts from it, live, and
 * still have them when the process is killed.  Nothing else changes: the
 * process writes its own report as before (sp_shm_active and
 * sp_shm_launched say "under the launcher" and stay false), and its stack
 * table, timelines and bpftrace maps stay private.

 * The layout is shared with the launcher (cli/run.c): this header is
 * its definition.
 */
#ifndef SP_SHM_H
#define SP_SHM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stripes.h"

#define SP_SHM_MAGIC      "SPSHM12"
#define SP_SHM_SECTIONS   (1u << 16)         /* processes (a clear refusal past it) */
#define SP_SHM_ENV        "SELFPROBE_SHM"    /* the path that reopens the file */
/* the launcher's abstract socket (with its pid) that hands the file to a
 * process of the run that may not reopen it by name (cli/shmserve.h) */
#define SP_SHM_SOCK_FMT   "selfprobe.shm.%d"
#define SP_SHM_RECORDS    (1u << 16)         /* probe records per process */
#define SP_SHM_SIZE       ((uint64_t)1 << 46) /* the memfd's (sparse) size: about 1 GiB
					       * of address range a process */
#define SP_SHM_TIMELINES  1024               /* timeline buffers (threads) per process */
#define SP_SHM_ERRORS     256                /* error records per process */
#define SP_SHM_OBJECTS    4096               /* text mappings noted per process */
#define SP_SHM_BT_MAPS    64                 /* a bpftrace program's maps shared per process */

enum sp_shm_state { SP_SHM_FREE, SP_SHM_RUNNING, SP_SHM_EXITED, SP_SHM_EXECED };

/* The stack action's table (actions/stack.h): in an mmap'ed arena, or under
 * the launcher in the shared file, whose layout is this header's. */
struct sp_probe;
#define SP_STACK_DEPTH 32
#define SP_STACKS_MAX  (1u << 16)
/* One distinct stack of one probe.  Under the launcher the table is in its
 * shared file (shm.h): RECORD names the probe there. */
struct sp_stack_entry {
	_Atomic uint64_t hash;              /* 0: free */
	_Atomic int ready;                  /* ips written */
	int32_t record;                     /* the probe's record in the shared file, or -1 */
	const struct sp_probe *probe;       /* in the process that recorded it */
	uint64_t count;
	int depth;
	uintptr_t ips[SP_STACK_DEPTH];
};
/* A process's table, then its slots in the order they were taken (slot+1;
 * 0 while the entry is being written): a report reads the entries that
 * exist, never the whole table, of which every page read would be
 * allocated in the shared file (19 MiB a process) and scanned once per
 * stack probe. */
struct sp_stack_area {
	struct sp_stack_entry table[SP_STACKS_MAX];
	_Atomic uint32_t n_taken;
	_Atomic uint32_t taken[SP_STACKS_MAX];
};

struct sp_shm_record {
	uint32_t id;                  /* counter index in the stripes */
	uint8_t kind;                 /* enum sp_probe_kind */
	uint8_t action;               /* enum sp_action_kind */
	uint8_t jmp;                  /* on the jmp path */
	uint8_t detached;             /* final[] holds its counts */
	/* The rest of a report entry (report.c), so that the entry built from
	 * here for a process that could not write its own has the same fields
	 * as the one it writes itself (issue 16): */
	uint8_t patch;                /* enum sp_shm_patch: what the site's bytes hold */
	uint8_t wants_return;         /* "returns" and "lost" are reported */
	uint8_t handler;              /* a C handler counting: action "handler" */
	uint8_t has_symbol;           /* symbol[] holds one (else null: an address) */
	uint8_t unloaded;             /* detached because its object went away */
	uint64_t link;                /* the link it was attached with, as a number: a
				       * control session's probes carry its link
				       * (runtime/api/control.h), 0 for the spec's */
	_Atomic uint8_t faulted;      /* its handler faulted (fault_sig, fault_addr) */
	int32_t fault_sig;
	uint64_t fault_addr;
	uint64_t address;             /* the site, where it is (or was) attached */
	uint64_t final[4];            /* enum sp_counter: earlier attachments' (the
				       * live counters add to them unless detached) */
	int32_t lat_slot;             /* latency action: its slot in the section's
				       * latency stripes (latency.h), or -1 */
	struct sp_lat final_lat;      /* its earlier attachments' histogram */
	char spec[192];
	char label[192];
	char object[192];
	char reason[128];
	char symbol[192];
	char implementation[192];     /* IFUNC: the implementation chosen, or "" */
};

enum sp_shm_patch { SP_SHM_PATCH_INT3, SP_SHM_PATCH_JMP5, SP_SHM_PATCH_HOP };

struct sp_shm_error {
	char spec[192];
	char message[320];
};

/* A text mapping of a loaded object, for symbolising its stacks. */
struct sp_shm_object {
	uint64_t bias, start, end;
	char path[232];
};

struct sp_shm_section {
	_Atomic int32_t pid;          /* 0: free */
	_Atomic int32_t state;        /* enum sp_shm_state */
	int32_t parent;               /* the pid that forked it, or 0 */
	char command[128];
	uint64_t records_off;         /* struct sp_shm_record[SP_SHM_RECORDS]: the
				       * process maps the chunks it fills, the
				       * launcher the whole (shmchunks.h) */
	uint64_t chunks_off;          /* the stripes' chunks (stripes.h layout) */
	uint64_t stripes_off;         /* stripe 0's counters (tstate.h), in its chunk */
	uint64_t stripe_bytes;        /* from a stripe's counters to the next's: SP_CHUNK_BYTES */
	uint32_t n_stripes;           /* SP_N_SLOTS */
	_Atomic uint32_t stripes_used; /* the exclusive stripes ever claimed are below
				       * this, and the shared one (the last) holds
				       * counts if shared_used: the launcher reads
				       * no other (tstate.c) */
	_Atomic uint32_t shared_used;
	uint64_t latency_off;         /* stripe 0's histograms (latency.h), stripe_bytes apart */
	uint64_t errors_off;          /* struct sp_shm_error[SP_SHM_ERRORS] (chunks) */
	_Atomic uint32_t n_errors;
	uint64_t stacks_off;          /* struct sp_stack_area (stack.h) */
	uint64_t objects_off;         /* struct sp_shm_object[SP_SHM_OBJECTS] (chunks) */
	_Atomic uint32_t n_objects;
	_Atomic uint32_t n_records;
	_Atomic uint32_t n_timelines;
	uint64_t timeline_off[SP_SHM_TIMELINES];   /* struct sp_tl_buf (timeline.h) */
	uint64_t report_off[2];       /* SP_SHM_REPORT_*: the full report written at a */
	uint64_t report_len[2];       /* normal exit (state EXITED), or length 0 */
	/* A bpftrace program's maps (bt.h tables), in the program's map order:
	 * the launcher compiles the same program text and prints them for a
	 * process that could not (killed) */
	_Atomic uint32_t bt_ran;      /* a block ran in this process */
	_Atomic uint32_t bt_maps;     /* entries of bt_map_off set */
	uint64_t bt_map_off[SP_SHM_BT_MAPS];
	uint64_t bt_map_bytes[SP_SHM_BT_MAPS];
	/* Map k's per-thread parts (bt_shard.h), which the launcher merges
	 * with the table as the process would: part 0 at bt_part_off[k] (0:
	 * none), part i bt_part_stride[k] bytes further, bt_part_n[k] of them
	 * (the launcher reads those below stripes_used), keyed or not as
	 * bt_part_keyed[k] says.  bt_ran_off: the compiled blocks' "ran" byte
	 * in part 0 (0: none), stripe_bytes apart: a process whose only
	 * hits were compiled ran too. */
	uint64_t bt_part_off[SP_SHM_BT_MAPS];
	uint64_t bt_part_stride[SP_SHM_BT_MAPS];
	uint32_t bt_part_n[SP_SHM_BT_MAPS];
	uint8_t bt_part_keyed[SP_SHM_BT_MAPS];
	_Atomic uint64_t bt_ran_off;
};

enum { SP_SHM_REPORT_JSON, SP_SHM_REPORT_TEXT };

/* Sections are SP_SHM_SECTION_STRIDE apart from sections_off: a process
 * maps its own only. */
#define SP_SHM_SECTION_STRIDE ((sizeof(struct sp_shm_section) + 4095) & ~(size_t)4095)

struct sp_shm_header {
	char magic[8];
	_Atomic uint64_t next_free;   /* bump allocator over the file, bytes */
	_Atomic uint32_t n_sections;  /* claims made: may pass SP_SHM_SECTIONS */
	_Atomic uint32_t n_refused;   /* processes that found no room: not counted */
	uint64_t sections_off;        /* struct sp_shm_section[SP_SHM_SECTIONS] */
	_Atomic int32_t pids[SP_SHM_SECTIONS];   /* each section's pid (an execve finds its earlier image) */
};

static inline uint64_t sp_shm_section_off(const struct sp_shm_header *h, uint32_t i)
{
	return h->sections_off + (uint64_t)i * SP_SHM_SECTION_STRIDE;
}

/* The process's section, from SELFPROBE_SHM (ENV: the environment as the
 * preload received it).  Called once at start; a no-op without the
 * variable.  0, or -errno (then nothing is shared; -ENOSPC: the launcher
 * counted this process as refused). */
int sp_shm_attach(char **env, int argc, char **argv);
bool sp_shm_active(void);
/* A section to record in: the launcher's, or our own file's. */
bool sp_shm_has_section(void);
/* Started by the launcher (its file could be read), section or not: the
 * launcher reports for this process, or counts it as refused. */
bool sp_shm_launched(void);

/* The control channel serves this process: the counters go to a file of
 * our own (made at their first use) when no launcher gave us a section. */
void sp_shm_want_own(void);
/* A read-only descriptor of the file our section is in (ours or the
 * launcher's), and the section's index in *SECTION; or -errno (-ENOENT: no
 * file; -EBADF: our own file's descriptor was closed by the program). */
int sp_shm_handout(uint32_t *section);

/* Where the stripes' chunks are (stripemem.h): 0 (shared) and the offset
 * of the first, or -1 (private memory). */
int sp_shm_stripes(uint64_t *offset);
/* BYTES of the shared file at OFF when SHARED >= 0, else private zeroes
 * (MAP_NORESERVE: touched pages only); AT: in place of that mapping.
 * Signal-safe (raw system calls): a thread's first hit maps its stripe's
 * chunk with it (stripemem.h).  MAP_FAILED (out of memory, the file
 * cannot be reached) or the address. */
void *sp_shm_map_raw(int shared, uint64_t off, size_t bytes, void *at);

/* Map BYTES of per-stripe data: the shared file at OFF when SHARED >= 0, else
 * private zeroed memory (MAP_NORESERVE: touched pages only).  AT: replace
 * that mapping (a fork child's), and fall back to private memory if the
 * shared one fails — never keep the parent's shared pages.  MAP_FAILED or
 * the address. */
void *sp_shm_map_stripes(int shared, uint64_t off, size_t bytes, void *at);

/* Where the stack table lives (-1: not shared), and the objects noted for
 * it (registry lock held; a mapping already noted is skipped). */
int sp_shm_stacks(uint64_t *offset);
void sp_shm_note_object(const char *path, uint64_t bias, uint64_t start, uint64_t end);

/* Our section's probe records (shmprobe.c fills them): record I, or NULL
 * (no shared file, not yet published; signal-safe); the next free one, its
 * index in *I, published by sp_shm_record_commit(I) once whole.  NULL when
 * there is none: no shared file, all SP_SHM_RECORDS taken, or its chunk
 * could not be mapped (shmchunks.h) — then the section's errors say so
 * once, for SPEC (the probe's), as the launcher reports a process that
 * could not write its own report without that probe.  Taken under the
 * registry lock, perhaps in a probe hit (signal-safe). */
struct sp_shm_record *sp_shm_record(int i);
struct sp_shm_record *sp_shm_record_next(uint32_t *i, const char *spec);
void sp_shm_record_commit(uint32_t i);
/* SRC (NULL: empty) into DST[N], cut to fit. */
void sp_shm_copy(char *dst, size_t n, const char *src);

/* An error for the report's "errors" (registry lock held, or at start;
 * perhaps in a probe hit: signal-safe). */
void sp_shm_error(const char *spec, const char *message);
/* The errors in our section so far (0 without one). */
uint32_t sp_shm_errors_count(void);

/* The stripes that may hold counts (tstate.c's bookkeeping), for the
 * launcher: exclusive ones below USED, and the shared one if SHARED.
 * Stores only (a thread's first hit). */
void sp_shm_stripes_used(int used, bool shared);

/* A timeline buffer of BYTES in the shared file, listed in the process's
 * section (signal-safe); NULL when there is no room. */
void *sp_shm_alloc_timeline(size_t bytes);
/* Record I's label and kind, or NULL. */
const char *sp_shm_record_label(uint32_t i, int *kind);

/* The process's full report (SP_SHM_REPORT_*), LEN bytes, into the shared
 * file for the launcher to use instead of the bare counters.  0 or -errno. */
int sp_shm_store_report(int which, const void *buf, size_t len);

/* Room for a bpftrace program's map number I (BYTES) in the process's
 * section: 0 with *OFF, or -1 (not under the launcher, no room). */
int sp_shm_bt_map(uint32_t i, uint64_t bytes, uint64_t *off);
/* BYTES of the file for the process's bpftrace parts: 0 with *OFF, or -1. */
int sp_shm_bt_alloc(uint64_t bytes, uint64_t *off);
/* Map I's parts are in the file (see the section's bt_part_*). */
void sp_shm_bt_parts(uint32_t i, uint64_t off, uint64_t stride, uint32_t n, bool keyed);
/* The compiled blocks' "ran" byte of part 0 is at OFF. */
void sp_shm_bt_ran_at(uint64_t off);
/* A bpftrace block ran in this process: the launcher prints its maps. */
void sp_shm_bt_ran(void);

/* The process is leaving normally: its section says so. */
void sp_shm_exited(void);
/* In a fork child: a section of its own, records published again. */
int sp_shm_atfork_child(void);

#endif
