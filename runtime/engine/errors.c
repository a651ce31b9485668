/* errors — the errors met while attaching, for the log and the report; see errors.h. */
#include "errors.h"
#include "heap.h"
#include "log.h"
#include "shm.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static struct sp_error *_Atomic errors_head;
static struct sp_error *errors_tail;

struct sp_error *sp_error_first(void) { return atomic_load(&errors_head); }

static void add_error(const char *spec, const char *msg)
{
	struct sp_error *e = sp_calloc(1, sizeof(*e));
	if (!e)
		return;
	e->spec = sp_strdup(spec ? spec : "");
	e->message = sp_strdup(msg);
	if (errors_tail)
		errors_tail->next = e;
	else
		atomic_store(&errors_head, e);
	errors_tail = e;
	sp_shm_error(e->spec, e->message);
}

void sp_probe_publish_errors(void)
{
	for (struct sp_error *e = atomic_load(&errors_head); e; e = e->next)
		sp_shm_error(e->spec, e->message);
}

/* An error for the report (and the log, when asked for).  Also log.h's
 * error sink: the lower modules' messages come formatted already. */
void sp_probe_record_error(const char *spec, const char *msg)
{
	sp_err("%s: %s", spec, msg);
	add_error(spec, msg);
}

void sp_probe_error(const char *spec, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sp_error_vsend(sp_probe_record_error, spec, fmt, ap);
	va_end(ap);
}
