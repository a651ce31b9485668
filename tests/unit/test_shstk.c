/* test_shstk — the shadow-stack answer and the choice it makes (shstk.h).
 * This machine's CPU has no shadow stack: the detection is fed both
 * answers here, and the live answer is only printed. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "shstk.h"

Test(shstk, prctl_answers)
{
	bool known;
	cr_assert(sp_shstk_from_prctl(0, 1, &known) && known, "ARCH_SHSTK_SHSTK set: enabled");
	cr_assert(!sp_shstk_from_prctl(0, 2, &known) && known, "only WRSS: not enabled");
	cr_assert(!sp_shstk_from_prctl(0, 0, &known) && known);
	cr_assert(!sp_shstk_from_prctl(-EINVAL, 1, &known) && !known, "an old kernel: ask elsewhere");
}

Test(shstk, status_answers)
{
	cr_assert(sp_shstk_from_status("Name:\tx\nx86_Thread_features:\tshstk wrss\nx86_Thread_features_locked:\t\n"));
	cr_assert(sp_shstk_from_status("x86_Thread_features:\twrss shstk"));
	cr_assert(!sp_shstk_from_status("Name:\tx\nx86_Thread_features:\t\nx86_Thread_features_locked:\tshstk\n"),
		  "locked is not enabled");
	cr_assert(!sp_shstk_from_status("x86_Thread_features:\tshstkx\n"), "a word, not a prefix");
	cr_assert(!sp_shstk_from_status("Name:\tx\nState:\tR\n"), "a kernel without the line");
	cr_assert(!sp_shstk_from_status(NULL));
}

Test(shstk, each_answer_selects_its_method)
{
	const char *why = sp_shstk_return_refusal(true);
	cr_assert(why && strstr(why, "shadow stack"), "with a shadow stack return probes are refused, "
		  "saying why");
	cr_assert_null(sp_shstk_return_refusal(false), "without one they swap return addresses");
}

Test(shstk, this_machine)
{
	bool on = sp_shstk_enabled();
	printf("this thread %s a shadow stack\n", on ? "runs with" : "has no");
	cr_assert_eq(sp_shstk_enabled(), on, "the answer is stable");
}
