/* fuzz_common — an input written to a memfd and read back through
 * /proc/self/fd/N (the path form the ELF readers take), shared by the
 * fuzzers that read files. */
#ifndef SP_FUZZ_COMMON_H
#define SP_FUZZ_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FUZZ_CHECK(name, c, ...) do { if (!(c)) { fprintf(stderr, name ": " __VA_ARGS__); \
	fputc('\n', stderr); abort(); } } while (0)

static int fuzz_memfd = -1;
static char fuzz_path[64];

static inline void fuzz_file_init(const char *name)
{
	fuzz_memfd = memfd_create(name, MFD_CLOEXEC);
	if (fuzz_memfd < 0) {
		perror("memfd_create");
		abort();
	}
	snprintf(fuzz_path, sizeof(fuzz_path), "/proc/self/fd/%d", fuzz_memfd);
}

static inline void fuzz_file_load(const uint8_t *data, size_t size)
{
	if (ftruncate(fuzz_memfd, 0) != 0)
		abort();
	size_t done = 0;
	while (done < size) {
		ssize_t n = pwrite(fuzz_memfd, data + done, size - done, (off_t)done);
		if (n <= 0)
			abort();
		done += (size_t)n;
	}
}

#endif
