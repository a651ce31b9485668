/* sp_fdreuse — a daemon-like program that takes the runtime's descriptor
 * numbers (e2e_fdreuse.py): it calls fdreuse_work (the probed function)
 * three times, closes every descriptor above 2 (as closefrom(3) does),
 * opens FILE (argv[1]) at 3 to 31 — the runtime's copies of stderr, taken
 * at 10 or more, are now its file — calls fdreuse_work three times more,
 * in itself and in a thread that then exits, writes "program\n" into FILE
 * and exits 0.  FILE must end up holding only that line. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

__attribute__((noinline)) int fdreuse_work(int i)
{
	__asm__ volatile("" ::: "memory");   /* not folded into its callers */
	return i * 2;
}

static void *worker(void *arg)
{
	(void)arg;
	fdreuse_work(100);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: sp_fdreuse FILE\n");
		return 2;
	}
	int sum = 0;
	for (int i = 0; i < 3; i++)
		sum += fdreuse_work(i);
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	int first = -1, fd;
	do {
		fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (first < 0)
			first = fd;
	} while (fd >= 0 && fd < 31);
	if (fd < 0) {
		perror(argv[1]);
		return 3;
	}
	for (int i = 3; i < 5; i++)
		sum += fdreuse_work(i);
	pthread_t t;
	if (pthread_create(&t, NULL, worker, NULL) == 0)
		pthread_join(t, NULL);
	const char line[] = "program\n";
	if (write(first, line, strlen(line)) != (ssize_t)strlen(line))
		return 4;
	printf("done %d\n", sum);
	return 0;
}
