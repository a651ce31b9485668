/* sigtake — see sigtake.h. */
#include "sigtake.h"
#include "arm.h"
#include "codemem.h"
#include "log.h"
#include "patch.h"
#include "registry.h"
#include "site.h"
#include "stopworld.h"
#include "trap.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Where the jmp is not safe (a branch into bytes 1-4 in another libc's
 * code), an int3 may lead there instead, a trap per call, except where a
 * thread may call with every signal blocked: the posix_spawn child calls
 * sigprocmask (so pthread_sigmask) so, and an int3 there would kill it
 * (the take, and so the attach, is refused instead). */
static struct entry {
	const char *name;         /* in libc */
	void *target;             /* trap.h's entry function */
	bool int3_ok;
	struct sp_site *site;     /* made once, armed per session */
} entries[] = {
	{ "__sigaction", (void *)sp_trap_entry_sigaction, true, NULL },
	{ "pthread_sigmask", (void *)sp_trap_entry_pthread_sigmask, false, NULL },
};
#define N_ENTRIES (sizeof(entries) / sizeof(entries[0]))

static int active;   /* registry lock */

/* A jump to TARGET placed within a rel32 of NEAR (the site's jmp reaches
 * it): a direct jmp when TARGET is in reach too, else an absolute one
 * through the quadword after it.  0 on failure. */
static uintptr_t stub_for(uintptr_t near, uintptr_t target)
{
	uintptr_t stub = sp_codemem_alloc(near, 16);
	if (!stub)
		return 0;
	uint8_t code[14];
	size_t len;
	intptr_t rel = (intptr_t)target - (intptr_t)(stub + 5);
	if (rel == (int32_t)rel) {
		code[0] = 0xe9;
		int32_t r = (int32_t)rel;
		memcpy(code + 1, &r, 4);
		len = 5;
	} else {
		static const uint8_t jmp_abs[6] = { 0xff, 0x25, 0, 0, 0, 0 };   /* jmp *0(%rip) */
		memcpy(code, jmp_abs, 6);
		uint64_t t = target;
		memcpy(code + 6, &t, 8);
		len = 14;
	}
	return sp_patch_write(stub, code, len) == 0 ? stub : 0;
}

/* Each entry's site, made on the first take.  0 or -errno. */
static int make_sites(char *err, size_t errlen)
{
	void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
	if (!libc) {
		snprintf(err, errlen, "libc.so.6 is not loaded");
		return -ENOENT;
	}
	int rc = 0;
	for (size_t i = 0; i < N_ENTRIES && rc == 0; i++) {
		struct entry *e = &entries[i];
		if (e->site)
			continue;
		/* through libc's handle: its own definition, whoever else
		 * defines the name */
		uintptr_t at = (uintptr_t)dlsym(libc, e->name);
		uintptr_t stub = at ? stub_for(at, (uintptr_t)e->target) : 0;
		char why[256] = "";
		if (!at)
			snprintf(why, sizeof(why), "no %s in libc.so.6", e->name);
		else if (!stub)
			snprintf(why, sizeof(why), "no code memory near %s", e->name);
		else
			e->site = sp_probe_take_site(at, stub, e->int3_ok, why, sizeof(why));
		if (!e->site) {
			snprintf(err, errlen, "cannot lead libc's %s into the runtime: %s", e->name, why);
			rc = -ENOTSUP;
		}
	}
	dlclose(libc);
	return rc;
}

int sp_sigtake_on(char *err, size_t errlen)
{
	sp_probe_setup();
	sp_probe_lock();
	int rc = 0;
	if (active)
		goto out;
	/* the handlers installed through libc's sigaction while it is
	 * still libc's, then the runtime's own system calls for good */
	rc = sp_trap_go_raw();
	if (rc) {
		snprintf(err, errlen, "cannot install the runtime's signal handlers: %s", strerror(-rc));
		goto out;
	}
	sp_patch_hold();
	rc = make_sites(err, errlen);
	struct sp_site *sites[N_ENTRIES];
	int rcs[N_ENTRIES];
	for (size_t i = 0; i < N_ENTRIES && rc == 0; i++)
		sites[i] = entries[i].site;
	if (rc == 0 && sp_arm_batch(sites, N_ENTRIES, rcs) != 0) {
		for (size_t i = 0; i < N_ENTRIES; i++)
			if (rcs[i] != 0 && rc == 0) {
				snprintf(err, errlen, "cannot patch libc's %s: %s", entries[i].name, strerror(-rcs[i]));
				rc = rcs[i];
			}
		sp_arm_disarm_batch(sites, N_ENTRIES);   /* those that took */
	}
	sp_patch_release();
	if (rc)
		goto out;
	for (size_t i = 0; i < N_ENTRIES; i++)
		if (!sites[i]->jmp)
			sp_info("sigtake: libc's %s keeps an int3 (%s)", entries[i].name,
				sites[i]->reason ? sites[i]->reason : "no jmp");
	active = 1;
	/* from here every sigaction of the program's is seen: what it set
	 * while nothing led here is its recorded action now */
	rc = sp_trap_retake();
	if (rc) {
		snprintf(err, errlen, "cannot take the runtime's signals back: %s", strerror(-rc));
		sp_probe_unlock();
		sp_sigtake_off();
		return rc;
	}
out:
	sp_probe_unlock();
	return rc;
}

/* Nothing of ours left in the code (the session detached every probe,
 * internal ones included): a stop check round makes every thread take any
 * trap raised before the restore, with our handler; then the program's
 * own actions go back (trap.h).  Registry lock held. */
static void give_actions_back(void)
{
	for (struct sp_site *s = sp_site_after(0); s; s = sp_site_after(s->addr))
		if (s->armed)
			return;
	if (sp_stopworld_check(NULL, 0) == 0)
		sp_trap_uninstall();
}

void sp_sigtake_off(void)
{
	sp_probe_lock();
	if (active) {
		struct sp_site *sites[N_ENTRIES];
		for (size_t i = 0; i < N_ENTRIES; i++)
			sites[i] = entries[i].site;
		/* while every sigaction still comes here, under the wrapper's
		 * lock: none is wrapped after this */
		sp_trap_give_back();
		sp_patch_hold();
		sp_arm_disarm_batch(sites, N_ENTRIES);
		sp_patch_release();
		active = 0;
		give_actions_back();
	}
	sp_probe_unlock();
}

int sp_sigtake_active(void)
{
	sp_probe_lock();
	int a = active;
	sp_probe_unlock();
	return a;
}
