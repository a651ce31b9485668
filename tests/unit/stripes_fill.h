/* stripes_fill — every exclusive counter stripe (tstate.h) taken by a
 * thread that stays, so that the next thread to hit a probe is beyond the
 * 128th: on the shared stripe (with SEATS, every seat of the shared stripe
 * taken too: the next one has none; that takes sp_tstate_limit_seats
 * first, else the fill stops at STRIPES_FILL_MAX threads that all found
 * one).  Each filler makes its first hit with FIRST_HIT (a probed call, or
 * sp_tstate_claim as a hit's first step does) and waits until
 * stripes_unfill. */
#ifndef SP_STRIPES_FILL_H
#define SP_STRIPES_FILL_H

#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>

#include "tstate.h"

#define STRIPES_FILL_MAX (SP_EXCL_SLOTS + 2 * SP_BOOT_SEATS + 1)

struct stripes_fill {
	void (*first_hit)(void);
	sem_t claimed, release;
	int last;                          /* the last filler's record (sp_tstate_my_seq) */
	int n;
	pthread_t t[STRIPES_FILL_MAX];
};

static void *stripes_filler(void *arg)
{
	struct stripes_fill *f = arg;
	f->first_hit();
	f->last = sp_tstate_my_seq();
	sem_post(&f->claimed);
	while (sem_wait(&f->release) != 0)
		;
	return NULL;
}

/* Whether a thread of record SEQ found what the fill takes taken. */
static inline bool stripes_full(int seq, bool seats)
{
	return seq == SP_SHARED_SLOT || (!seats && seq >= SP_SEAT0);
}

/* Fillers until one finds no exclusive stripe (SEATS: and no seat) left,
 * whatever other threads hold: true then. */
static inline bool stripes_fill(struct stripes_fill *f, void (*first_hit)(void), bool seats)
{
	f->first_hit = first_hit;
	f->n = 0;
	f->last = -1;
	sem_init(&f->claimed, 0, 0);
	sem_init(&f->release, 0, 0);
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, 256 * 1024);
	while (f->n < (int)(sizeof(f->t) / sizeof(f->t[0])) && !stripes_full(f->last, seats) &&
	       pthread_create(&f->t[f->n], &a, stripes_filler, f) == 0) {
		f->n++;
		while (sem_wait(&f->claimed) != 0)
			;
	}
	pthread_attr_destroy(&a);
	return stripes_full(f->last, seats);
}

static inline void stripes_unfill(struct stripes_fill *f)
{
	for (int i = 0; i < f->n; i++)
		sem_post(&f->release);
	for (int i = 0; i < f->n; i++)
		pthread_join(f->t[i], NULL);
	f->n = 0;
}

#endif
