/* sp_fdreuse — a daemon-like program that takes the runtime's descriptor
 * numbers (e2e_fdreuse.py): it calls fdreuse_work (the probed function)
 * three times, closes every descriptor above 2 (as closefrom(3) does),
 * opens FILE (argv[1]) at 3 to 31 and 512 to 543 — the runtime's copies of
 * stderr, taken at 10 or more, and of stdout (a bpftrace program's output),
 * taken at 512 or more, are now its file — calls fdreuse_work three times more,
 * in itself and in a thread that then exits, forks a child that finds
 * every one of those descriptors still open (the runtime's fork handler
 * must not close them: exit 5 else), writes "program\n" into FILE
 * and exits 0.  FILE must end up holding only that line. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
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
	static char taken[544];   /* its own: a runtime thread may hold a number for a while */
	do {
		fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (first < 0)
			first = fd;
		if (fd >= 0 && fd < 544)
			taken[fd] = 1;
	} while (fd >= 0 && fd < 31);
	if (fd < 0) {
		perror(argv[1]);
		return 3;
	}
	for (fd = 512; fd < 544; fd++)
		if (dup2(first, fd) != fd) {
			perror("dup2");
			return 3;
		} else
			taken[fd] = 1;
	for (int i = 3; i < 5; i++)
		sum += fdreuse_work(i);
	pthread_t t;
	if (pthread_create(&t, NULL, worker, NULL) == 0)
		pthread_join(t, NULL);
	pid_t child = fork();
	if (child == 0) {
		for (fd = 3; fd < 544; fd++)
			if (taken[fd] && fcntl(fd, F_GETFD) < 0)
				_exit(5);
		_exit(0);
	}
	int status = -1;
	if (child < 0 || waitpid(child, &status, 0) != child || status != 0) {
		fprintf(stderr, "sp_fdreuse: the fork child found a descriptor of the program's closed\n");
		return 5;
	}
	const char line[] = "program\n";
	if (write(first, line, strlen(line)) != (ssize_t)strlen(line))
		return 4;
	printf("done %d\n", sum);
	return 0;
}
