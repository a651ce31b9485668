/* shmserve — the shared file's descriptor for the processes of a run that
 * cannot reopen it by name.
 *
 * A probed process reopens the launcher's memfd as /proc/LAUNCHER/fd/N
 * (runtime/hot/shm.h), which the kernel allows only to a process that may
 * read the launcher's state: one that changed user before its exec (a root
 * program starting a child as nobody: Python's subprocess user=, setpriv,
 * runuser) is refused, and reported by itself on its own stderr.  Such a
 * process asks here instead: a Unix socket in the abstract namespace
 * (SP_SHM_SOCK_FMT with the launcher's pid), served by a thread of the
 * launcher, which hands the descriptor (SCM_RIGHTS) to a peer only when
 * that process descends from the launcher (SO_PEERCRED, then the parent
 * chain in /proc): the socket's name is visible to every process, the file
 * only to the run's.  The peer closes it after its mapping, as it would
 * the reopened one. */
#ifndef SP_CLI_SHMSERVE_H
#define SP_CLI_SHMSERVE_H

/* Serve MEMFD to the run's processes until this process exits.  0, or
 * -errno (they then report by themselves, as before). */
int sp_shmserve_start(int memfd);

#endif
