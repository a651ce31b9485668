/* run — `selfprobe run` (see run.c). */
#ifndef SP_CLI_RUN_H
#define SP_CLI_RUN_H

#include <stdio.h>

/* ARGV: the options after "run".  USAGE prints run's help.  The program's
 * exit status, or 2 for a usage error. */
int sp_cli_run(int argc, char **argv, void (*usage)(FILE *));

/* libselfprobe.so beside this binary (../lib), resolved; a static buffer. */
const char *sp_cli_library_path(void);

#endif
