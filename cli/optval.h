/* optval — the values of the launcher's options: each checked whole, a bad
 * or missing one refused with the option and the value named (exit 2, the
 * usage error of every command). */
#ifndef SP_CLI_OPTVAL_H
#define SP_CLI_OPTVAL_H

#include <sys/types.h>

/* The value of the option ARGV[*I], *I moved onto it; NULL when it is the
 * last argument ("selfprobe: OPT needs a value" said). */
const char *sp_opt_value(int argc, char **argv, int *i);
/* VALUE of OPT as seconds: a finite number > 0, fractions allowed.  0, or 2
 * (said). */
int sp_opt_seconds(const char *opt, const char *value, double *out);
/* VALUE of OPT as a decimal integer from MIN to MAX.  0, or 2 (said). */
int sp_opt_long(const char *opt, const char *value, long min, long max, long *out);
/* VALUE as a decimal integer from MIN to MAX (digits only: no sign, no
 * blank).  0, or -1 (nothing said). */
int sp_opt_parse_long(const char *value, long min, long max, long *out);
/* VALUE as a process id.  0, or -1 (nothing said: a caller may take it
 * for another argument). */
int sp_opt_pid(const char *value, pid_t *pid);

#endif
