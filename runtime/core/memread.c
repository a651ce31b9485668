/* memread — see memread.h. */
#include "memread.h"
#include "rawsys.h"

#include <sys/syscall.h>
#include <sys/uio.h>

bool sp_mem_read(uintptr_t addr, void *out, size_t len)
{
	if (len == 0)
		return true;
	struct iovec local = { out, len }, remote = { (void *)addr, len };
	long pid = sp_syscall6(SYS_getpid, 0, 0, 0, 0, 0, 0);
	return sp_syscall6(SYS_process_vm_readv, pid, (long)&local, 1, (long)&remote, 1, 0) == (long)len;
}
