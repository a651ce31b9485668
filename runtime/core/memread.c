/* memread — see memread.h. */
#include "memread.h"

#include <sys/uio.h>
#include <unistd.h>

bool sp_mem_read(uintptr_t addr, void *out, size_t len)
{
	if (len == 0)
		return true;
	struct iovec local = { out, len }, remote = { (void *)addr, len };
	return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)len;
}
