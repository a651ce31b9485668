/* attach — `selfprobe attach`, `detach` and `top`: probes in a process that
 * is already running, through its runtime's control channel (loaded into it
 * first when it has none: inject.h). */
#ifndef SP_CLI_ATTACH_H
#define SP_CLI_ATTACH_H

#include <stdio.h>

/* ARGV: the options after the command's name.  Exit status: 0, 1 (the
 * target refused or could not be reached: the reason on stderr), 2 usage. */
int sp_cli_attach(int argc, char **argv, void (*usage)(FILE *));
int sp_cli_detach(int argc, char **argv, void (*usage)(FILE *));
int sp_cli_top(int argc, char **argv, void (*usage)(FILE *));

#endif
