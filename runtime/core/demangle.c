/* demangle — see demangle.h. */
#include "demangle.h"

#include <libiberty/demangle.h>
#include <string.h>

struct sink {
	char *out;
	size_t len, n;   /* N: the bytes written so far, the NUL excluded */
};

static void put(const char *s, size_t n, void *opaque)
{
	struct sink *k = opaque;
	size_t room = k->len - 1 - k->n;
	if (n > room)
		n = room;
	memcpy(k->out + k->n, s, n);
	k->n += n;
}

bool sp_demangle(const char *name, char *out, size_t len)
{
	if (!name || len == 0 || strncmp(name, "_Z", 2) != 0)
		return false;
	/* into a scratch buffer first: OUT stays as it was when the name
	 * turns out not to demangle half way through its printing */
	char buf[1024];
	struct sink k = { .out = buf, .len = sizeof(buf) < len ? sizeof(buf) : len };
	/* __cxa_demangle's options: parameter lists, types */
	if (!cplus_demangle_v3_callback(name, DMGL_PARAMS | DMGL_TYPES, put, &k))
		return false;
	buf[k.n] = '\0';
	memcpy(out, buf, k.n + 1);
	return true;
}

size_t sp_demangle_stack_need(const char *name)
{
	return 16384 + strlen(name) * SP_DEMANGLE_STACK_PER_CHAR;
}
