/* demangle — a C++ symbol's name as bpftrace 0.17 prints it.
 *
 * bpftrace (bcc's symbol cache) demangles a name that starts with "_Z"
 * with __cxa_demangle: the full name, parameter lists included
 * ("ns::Box<int>::get(int) const").  __cxa_demangle grows its result with
 * realloc, on the program's malloc heap; this wrapper uses the same
 * demangler (libiberty's cp-demangle, which libstdc++'s __cxa_demangle is
 * built from) through its callback interface, which allocates nothing: its
 * work space is on the stack, in variable-length arrays (about
 * 150 bytes per character of the mangled name, measured: see
 * sp_demangle_stack_need), its output handed over piece by piece. */
#ifndef SP_DEMANGLE_H
#define SP_DEMANGLE_H

#include <stdbool.h>
#include <stddef.h>

/* NAME demangled into OUT (LEN bytes, NUL-terminated, cut short if it does
 * not fit): true.  False, OUT untouched, for a name that is not a mangled
 * C++ name (no "_Z" prefix) or that does not demangle. */
bool sp_demangle(const char *name, char *out, size_t len);

/* The stack sp_demangle may take for NAME, with room to spare: its arrays
 * are sized by the mangled name's length (two components and a
 * substitution slot per character, and the printer's scopes). */
#define SP_DEMANGLE_STACK_PER_CHAR 256
size_t sp_demangle_stack_need(const char *name);

#endif
