/* specargs — -e SPEC and -f FILE, joined (specargs.h).
 *
 * The launcher reads the files itself: "@FILE" is a whole spec for the
 * runtime (spec.c), never an item among others, so it cannot carry several
 * files nor a file beside -e; and the target of attach may not see the file
 * at all (another working directory or mount namespace).  Items are joined
 * by newlines, a file's '#' comments blanked first (the runtime takes them
 * only in an @FILE).  A bpftrace program (a part holding '{') is a whole
 * spec too: spec.c reads the whole text as one program when it holds a '{'
 * anywhere, so a program is refused beside any other -e or -f rather than
 * compiled with items it would take for bpftrace text.
 */
#include "specargs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"

/* FROM: "-e", or the file's path. */
static int add(struct sp_specargs *s, const char *part, const char *from)
{
	bool program = sp_spec_is_program(part);
	if (s->text && (program || s->program)) {
		const char *prog = program ? from : s->program;
		bool file = strcmp(prog, "-e") != 0;
		fprintf(stderr, "selfprobe: the bpftrace program of %s%s is a whole spec: "
			"no other -e or -f with it\n", file ? "-f " : "-e", file ? prog : "");
		return 2;
	}
	size_t a = s->text ? strlen(s->text) : 0, b = strlen(part);
	char *n = realloc(s->text, a + b + 2);
	if (!n) {
		perror("selfprobe");
		return 2;
	}
	if (s->text)
		n[a++] = '\n';
	memcpy(n + a, part, b + 1);
	s->text = n;
	if (program)
		s->program = from;
	return 0;
}

int sp_specargs_spec(struct sp_specargs *s, const char *spec)
{
	return add(s, spec, "-e");
}

int sp_specargs_file(struct sp_specargs *s, const char *path)
{
	char *text, *msg;
	int rc = sp_spec_read_file(path, &text, &msg);
	if (rc) {
		if (rc == -ENOMEM)
			fprintf(stderr, "selfprobe: -f %s: %s\n", path, strerror(ENOMEM));
		else   /* msg names the file */
			fprintf(stderr, "selfprobe: %s\n", msg);
		free(msg);
		return 2;
	}
	if (!sp_spec_is_program(text))
		sp_spec_blank_comments(text);
	rc = add(s, text, path);
	free(text);
	return rc;
}

void sp_specargs_free(struct sp_specargs *s)
{
	free(s->text);
	memset(s, 0, sizeof(*s));
}
