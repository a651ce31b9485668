/* specargs — the probes a command's -e SPEC and -f FILE options give, in
 * their order, as one spec text: run's UPROBE_SPEC, attach's and top's
 * request.  Shared by run.c and attach.c. */
#ifndef SP_CLI_SPECARGS_H
#define SP_CLI_SPECARGS_H

struct sp_specargs {
	char *text;           /* the items, one part a line; NULL: no -e nor -f */
	const char *program;  /* what gave a bpftrace program ("-e", a file), or NULL */
};

/* Add -e SPEC.  0, or 2 (a usage error, said on stderr). */
int sp_specargs_spec(struct sp_specargs *s, const char *spec);
/* Add -f FILE, read here: its items ('#' comments dropped) or its bpftrace
 * program, passed whole so that its errors' lines are the file's.  0, or 2
 * (a file that cannot be read, or a usage error: said on stderr). */
int sp_specargs_file(struct sp_specargs *s, const char *path);
void sp_specargs_free(struct sp_specargs *s);

#endif
