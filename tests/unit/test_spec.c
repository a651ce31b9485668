/* Tests for runtime/core/spec.c, the UPROBE_SPEC parser: table-driven valid and
 * invalid items (every parsed field, or the error message), separators,
 * whitespace, @FILE with comments, mixed good and bad items, parse_probe,
 * and robustness against arbitrary bytes and huge inputs. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spec.h"
#include "heap.h"

/* ------------------------------------------------------------ helpers */

static bool str_eq_null(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

#define expect_str(got, want, in)                                                      \
	cr_expect(str_eq_null((got), (want)), "%s: %s is '%s', expected '%s'", (in), #got, \
		  (got) ? (got) : "(null)", (want) ? (want) : "(null)")

/* No raw control byte may reach a message: it would break a report line. */
static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			return false;
	return true;
}

static char *write_temp(const char *content, size_t len)
{
	char *path = strdup("/tmp/test_spec_XXXXXX");
	int fd = mkstemp(path);
	cr_assert(fd >= 0, "mkstemp: %s", strerror(errno));
	cr_assert_eq(write(fd, content, len), (ssize_t)len);
	close(fd);
	return path;
}

/* ------------------------------------------------------- valid items */

struct valid_case {
	const char *in;
	enum sp_probe_kind kind;
	const char *object, *provider, *name;
	bool has_offset;
	uint64_t offset;
	bool has_address;
	uint64_t address;
	enum sp_action_kind action;
	const char *plugin_path, *plugin_fn;
	const char *text;       /* NULL: same as in */
	const char *probe_text; /* NULL: same as text */
};

#define U SP_KIND_UPROBE
#define UR SP_KIND_URETPROBE
#define US SP_KIND_USESSION
#define UD SP_KIND_USDT

static const struct valid_case valid[] = {
	/* the design's examples */
	{ .in = "uprobe:libc:malloc", .kind = U, .object = "libc", .name = "malloc" },
	{ .in = "uretprobe:libz:deflate=latency", .kind = UR, .object = "libz", .name = "deflate",
	  .action = SP_ACT_LATENCY, .probe_text = "uretprobe:libz:deflate" },
	{ .in = "usession:./app:parse_*=./handlers.so:on_parse", .kind = US, .object = "./app",
	  .name = "parse_*", .action = SP_ACT_PLUGIN, .plugin_path = "./handlers.so",
	  .plugin_fn = "on_parse", .probe_text = "usession:./app:parse_*" },
	{ .in = "usdt:./app:test:usdt0=trace", .kind = UD, .object = "./app", .provider = "test",
	  .name = "usdt0", .action = SP_ACT_TRACE, .probe_text = "usdt:./app:test:usdt0" },
	{ .in = "uprobe:0x401126", .has_address = true, .address = 0x401126 },
	/* objects */
	{ .in = "uprobe:malloc", .name = "malloc" },
	{ .in = "uprobe:/usr/lib/x86_64-linux-gnu/libc.so.6:free",
	  .object = "/usr/lib/x86_64-linux-gnu/libc.so.6", .name = "free" },
	{ .in = "uprobe:../rel/path/app:main", .object = "../rel/path/app", .name = "main" },
	{ .in = "uprobe:/opt/my app/bin:main", .object = "/opt/my app/bin", .name = "main" },
	{ .in = "uprobe:libstdc++:_ZN3foo3barEv", .object = "libstdc++", .name = "_ZN3foo3barEv" },
	{ .in = "uprobe:_:a", .object = "_", .name = "a" },
	/* offsets and addresses */
	{ .in = "uprobe:libc:malloc+4", .object = "libc", .name = "malloc", .has_offset = true, .offset = 4 },
	{ .in = "uprobe:libc:malloc+0x10", .object = "libc", .name = "malloc", .has_offset = true, .offset = 16 },
	{ .in = "uprobe:libc:malloc+0", .object = "libc", .name = "malloc", .has_offset = true, .offset = 0 },
	{ .in = "uprobe:libc:malloc+0XfF", .object = "libc", .name = "malloc", .has_offset = true, .offset = 255 },
	{ .in = "uprobe:libc:malloc+010", .object = "libc", .name = "malloc", .has_offset = true, .offset = 10 },
	{ .in = "uprobe:libc:malloc+18446744073709551615", .object = "libc", .name = "malloc",
	  .has_offset = true, .offset = UINT64_MAX },
	{ .in = "uprobe:libc:malloc+0xffffffffffffffff", .object = "libc", .name = "malloc",
	  .has_offset = true, .offset = UINT64_MAX },
	{ .in = "uprobe:./app:0xFFFFFFFFFFFFFFFF", .object = "./app", .has_address = true, .address = UINT64_MAX },
	{ .in = "uprobe:./app:0X0", .object = "./app", .has_address = true, .address = 0 },
	{ .in = "uprobe:./app:0x00000000000000000401126", .object = "./app", .has_address = true,
	  .address = 0x401126 },
	/* symbol characters */
	{ .in = "uprobe:libc:malloc@GLIBC_2.2.5", .object = "libc", .name = "malloc@GLIBC_2.2.5" },
	{ .in = "uprobe:libc:malloc@@GLIBC_2.2.5", .object = "libc", .name = "malloc@@GLIBC_2.2.5" },
	/* Go's names (golang.h) */
	{ .in = "uprobe:main.(*T).Inc", .name = "main.(*T).Inc" },
	{ .in = "uprobe:main.(*T).Inc-fm", .name = "main.(*T).Inc-fm" },
	{ .in = "uprobe:net/http.(*Server).Serve", .name = "net/http.(*Server).Serve" },
	{ .in = "uprobe:main.Max[go.shape.*uint8_0,go.shape.int_1]",
	  .name = "main.Max[go.shape.*uint8_0,go.shape.int_1]" },
	{ .in = "uprobe:./app:_Z3foov.cold", .object = "./app", .name = "_Z3foov.cold" },
	{ .in = "uprobe:./app:foo.constprop.0", .object = "./app", .name = "foo.constprop.0" },
	{ .in = "uprobe:./app:$x", .object = "./app", .name = "$x" },
	/* globs */
	{ .in = "uprobe:libc:str*", .object = "libc", .name = "str*" },
	{ .in = "uprobe:libc:*", .object = "libc", .name = "*" },
	{ .in = "uprobe:libc:mem?py", .object = "libc", .name = "mem?py" },
	{ .in = "uprobe:libc:str[a-c]*", .object = "libc", .name = "str[a-c]*" },
	{ .in = "uprobe:libc:[!_]*", .object = "libc", .name = "[!_]*" },
	{ .in = "uprobe:libc:str*+8", .object = "libc", .name = "str*", .has_offset = true, .offset = 8 },
	/* return and session probes */
	{ .in = "uretprobe:libc:malloc", .kind = UR, .object = "libc", .name = "malloc" },
	{ .in = "uretprobe:0x401126", .kind = UR, .has_address = true, .address = 0x401126 },
	{ .in = "usession:libc:malloc", .kind = US, .object = "libc", .name = "malloc" },
	{ .in = "usession:./app:parse_*=latency", .kind = US, .object = "./app", .name = "parse_*",
	  .action = SP_ACT_LATENCY, .probe_text = "usession:./app:parse_*" },
	/* usdt */
	{ .in = "usdt:test:usdt0", .kind = UD, .provider = "test", .name = "usdt0" },
	{ .in = "usdt:/usr/lib/libfoo.so:prov:probe_1", .kind = UD, .object = "/usr/lib/libfoo.so",
	  .provider = "prov", .name = "probe_1" },
	{ .in = "usdt:./app:test:*", .kind = UD, .object = "./app", .provider = "test", .name = "*" },
	{ .in = "usdt:./app:test:usdt0=./h.so:on_usdt", .kind = UD, .object = "./app", .provider = "test",
	  .name = "usdt0", .action = SP_ACT_PLUGIN, .plugin_path = "./h.so", .plugin_fn = "on_usdt",
	  .probe_text = "usdt:./app:test:usdt0" },
	/* actions */
	{ .in = "uprobe:libc:malloc=count", .object = "libc", .name = "malloc",
	  .probe_text = "uprobe:libc:malloc" },
	{ .in = "uprobe:libc:malloc=trace", .object = "libc", .name = "malloc", .action = SP_ACT_TRACE,
	  .probe_text = "uprobe:libc:malloc" },
	{ .in = "uprobe:libc:malloc=stack", .object = "libc", .name = "malloc", .action = SP_ACT_STACK,
	  .probe_text = "uprobe:libc:malloc" },
	{ .in = "uprobe:libc:malloc=latency", .object = "libc", .name = "malloc", .action = SP_ACT_LATENCY,
	  .probe_text = "uprobe:libc:malloc" },
	{ .in = "uprobe:libc:malloc=/opt/h:x.so:on_hit", .object = "libc", .name = "malloc",
	  .action = SP_ACT_PLUGIN, .plugin_path = "/opt/h:x.so", .plugin_fn = "on_hit",
	  .probe_text = "uprobe:libc:malloc" },
	{ .in = "uprobe:libc:malloc=h.so:_fn1", .object = "libc", .name = "malloc",
	  .action = SP_ACT_PLUGIN, .plugin_path = "h.so", .plugin_fn = "_fn1",
	  .probe_text = "uprobe:libc:malloc" },
	{ .in = "uprobe:./app:0x401126=stack", .object = "./app", .has_address = true,
	  .address = 0x401126, .action = SP_ACT_STACK, .probe_text = "uprobe:./app:0x401126" },
	{ .in = "uretprobe:libz:deflate=./h.so:on_ret", .kind = UR, .object = "libz", .name = "deflate",
	  .action = SP_ACT_PLUGIN, .plugin_path = "./h.so", .plugin_fn = "on_ret",
	  .probe_text = "uretprobe:libz:deflate" },
	/* whitespace around the item and around '=' */
	{ .in = "  uprobe:libc:malloc  ", .object = "libc", .name = "malloc", .text = "uprobe:libc:malloc" },
	{ .in = "uprobe:libc:malloc = trace", .object = "libc", .name = "malloc", .action = SP_ACT_TRACE,
	  .probe_text = "uprobe:libc:malloc" },
	{ .in = "\t uprobe:libc:malloc\t=\t./h.so:f \v\f", .object = "libc", .name = "malloc",
	  .action = SP_ACT_PLUGIN, .plugin_path = "./h.so", .plugin_fn = "f",
	  .text = "uprobe:libc:malloc\t=\t./h.so:f", .probe_text = "uprobe:libc:malloc" },
};

static void check_item(const struct sp_spec_item *it, const struct valid_case *c)
{
	const char *text = c->text ? c->text : c->in;
	const char *probe_text = c->probe_text ? c->probe_text : text;

	cr_expect_eq(it->kind, c->kind, "%s: kind %s", c->in, sp_kind_name(it->kind));
	expect_str(it->object, c->object, c->in);
	expect_str(it->provider, c->provider, c->in);
	expect_str(it->name, c->name, c->in);
	cr_expect_eq(it->has_offset, c->has_offset, "%s: has_offset", c->in);
	cr_expect_eq(it->offset, c->offset, "%s: offset %#llx", c->in, (unsigned long long)it->offset);
	cr_expect_eq(it->has_address, c->has_address, "%s: has_address", c->in);
	cr_expect_eq(it->address, c->address, "%s: address %#llx", c->in, (unsigned long long)it->address);
	cr_expect_eq(it->action, c->action, "%s: action %s", c->in, sp_action_name(it->action));
	expect_str(it->plugin_path, c->plugin_path, c->in);
	expect_str(it->plugin_fn, c->plugin_fn, c->in);
	expect_str(it->text, text, c->in);
	expect_str(it->probe_text, probe_text, c->in);
}

Test(spec, valid_items)
{
	size_t n = sizeof(valid) / sizeof(valid[0]);

	cr_assert_geq(n, 40);
	for (size_t i = 0; i < n; i++) {
		struct sp_spec s = { 0 };
		cr_assert_eq(sp_spec_parse(valid[i].in, &s), 0);
		cr_expect_eq(s.n_errors, 0, "%s: unexpected error '%s'", valid[i].in,
			     s.n_errors ? s.errors[0].message : "");
		cr_expect_eq(s.n_items, 1, "%s: %zu items", valid[i].in, s.n_items);
		if (s.n_items == 1)
			check_item(&s.items[0], &valid[i]);
		sp_spec_free(&s);
	}
}

/* The same items one by one through sp_spec_parse_probe (those without an
 * action): the same fields. */
Test(spec, valid_probes_via_parse_probe)
{
	size_t tested = 0;

	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		struct sp_spec_item it;
		char *err = (char *)1;
		if (strchr(valid[i].in, '='))
			continue;
		cr_expect_eq(sp_spec_parse_probe(valid[i].in, &it, &err), 0, "%s", valid[i].in);
		cr_expect_null(err, "%s: %s", valid[i].in, err);
		check_item(&it, &valid[i]);
		sp_spec_item_free(&it);
		tested++;
	}
	cr_expect_geq(tested, 30);
}

/* ----------------------------------------------------- invalid items */

struct invalid_case {
	const char *in;
	const char *msg; /* a substring of the message */
};

static const struct invalid_case invalid[] = {
	/* kinds */
	{ "uprobez:libc:malloc", "unknown probe kind 'uprobez' (expected uprobe, uretprobe, usession or usdt)" },
	{ "UPROBE:libc:malloc", "unknown probe kind 'UPROBE'" },
	{ "malloc", "unknown probe kind 'malloc'" },
	{ ":libc:malloc", "missing probe kind before ':'" },
	{ "@file.probes", "'@FILE' is only allowed as the whole spec" },
	{ "#comment", "'#' comments are only allowed in an @FILE" },
	/* structure */
	{ "uprobe", "missing location" },
	{ "uprobe:", "missing location" },
	{ "uprobe:libc:", "missing location" },
	{ "uprobe::malloc", "empty object name" },
	{ "uprobe:a:b:c", "too many ':' fields" },
	{ "uprobe:ns::foo", "too many ':' fields" },
	{ "uprobe:/a:b/c:d:e:f", "too many ':' fields" },
	/* offsets */
	{ "uprobe:libc:malloc+0xZZ", "bad offset '+0xZZ'" },
	{ "uprobe:libc:malloc+", "bad offset '+'" },
	{ "uprobe:libc:malloc+-1", "bad offset '+-1'" },
	{ "uprobe:libc:malloc+ 4", "bad offset '+ 4'" },
	{ "uprobe:libc:malloc+4x", "bad offset '+4x'" },
	{ "uprobe:libc:malloc+0x", "bad offset '+0x'" },
	{ "uprobe:libc:malloc+18446744073709551616", "more than 64 bits" },
	{ "uprobe:libc:malloc+0x10000000000000000", "more than 64 bits" },
	{ "uprobe:libc:malloc+4+4", "bad offset '+4+4'" },
	{ "uprobe:libc:+4", "missing symbol before '+4'" },
	{ "uretprobe:libc:malloc+4", "an offset is not allowed for uretprobe" },
	{ "usession:libc:malloc+0", "an offset is not allowed for usession" },
	/* addresses */
	{ "uprobe:0x401126+4", "an offset is not allowed after an address" },
	{ "uprobe:0xZZ", "bad address '0xZZ'" },
	{ "uprobe:0x", "bad address '0x'" },
	{ "uprobe:0x1ffffffffffffffff", "more than 64 bits" },
	{ "uprobe:401126", "a symbol cannot start with a digit" },
	/* symbol names */
	{ "uprobe:libc:ma lloc", "whitespace in symbol name 'ma lloc'" },
	{ "uprobe:libc:ma\x01lloc", "control character '\\x01' in symbol name 'ma\\x01lloc'" },
	{ "uprobe:libc:foo(int)", "C++ symbols must be given mangled" },
	{ "uprobe:libc:foo%bar", "invalid character '%' in symbol name 'foo%bar'" },
	{ "uprobe:libc:foo(bar)", "C++ symbols must be given mangled" },
	{ "uprobe:main.F[go.shape.int_0%x]", "invalid character '%'" },
	{ "uprobe:libc:mal#loc", "invalid character '#'" },
	{ "uprobe:libc:caf\xc3\xa9", "invalid character '\\xc3'" },
	{ "uprobe:libc:str[a-c", "unterminated '['" },
	{ "uprobe:libc:str*[", "unterminated '['" },
	{ "uprobe:libc:str]", "unmatched ']'" },
	{ "uprobe:libc:str[]", "empty '[]'" },
	{ "uprobe:libc:[!]", "empty '[]'" },
	{ "uprobe:libc:str[[a]", "'[' inside '[...]'" },
	{ "uprobe:libc:str[*]", "'*' inside '[...]'" },
	/* objects */
	{ "uprobe: libc:malloc", "whitespace around object name ' libc'" },
	{ "uprobe:lib\x02" "c:malloc", "control character '\\x02' in object name" },
	/* usdt */
	{ "usdt", "usdt probe needs provider:name" },
	{ "usdt:test", "usdt probe needs provider:name" },
	{ "usdt:a:b:c:d", "too many ':' fields (expected usdt:[object:]provider:name" },
	{ "usdt:./app:test:usdt0+4", "offsets are not allowed in usdt probes" },
	{ "usdt:./app:test:0x10", "addresses are not allowed in usdt probes" },
	{ "usdt:./app::usdt0", "empty usdt provider" },
	{ "usdt:./app:test:", "empty usdt probe name" },
	{ "usdt::test:usdt0", "empty object name" },
	{ "usdt:./app:te st:x", "whitespace in usdt provider 'te st'" },
	{ "usdt:./app:test:usdt0=latency", "not available for usdt probes" },
	/* actions */
	{ "uprobe:libc:malloc=", "empty action after '='" },
	{ "uprobe:libc:malloc=  ", "empty action after '='" },
	{ "uprobe:libc:malloc=foo",
	  "unknown action 'foo' (expected count, latency, trace, stack or PATH:FUNCTION)" },
	{ "uprobe:libc:malloc=COUNT", "unknown action 'COUNT'" },
	{ "uprobe:libc:malloc=count=trace", "more than one '='" },
	{ "uprobe:libc:malloc=:fn", "missing plugin path before ':fn'" },
	{ "uprobe:libc:malloc=./h.so:", "missing plugin function after './h.so:'" },
	{ "uprobe:libc:malloc=./h.so:on-hit", "bad plugin function 'on-hit'" },
	{ "uprobe:libc:malloc=./h.so:1fn", "bad plugin function '1fn'" },
	{ "uprobe:libc:malloc=./h.so: fn", "bad plugin function ' fn'" },
	{ "uprobe:libc:malloc=./h\x01.so:fn", "control character '\\x01' in plugin path" },
	{ "uprobe:libc:malloc+4=latency", "latency needs a function entry" },
	{ "=count", "missing probe before '='" },
	{ "  = trace ", "missing probe before '='" },
};

Test(spec, invalid_items)
{
	size_t n = sizeof(invalid) / sizeof(invalid[0]);

	cr_assert_geq(n, 45);
	for (size_t i = 0; i < n; i++) {
		const char *in = invalid[i].in;
		struct sp_spec s = { 0 };
		char want_item[256];
		size_t a = strspn(in, " \t"), b = strlen(in);

		while (b > a && strchr(" \t", in[b - 1]))
			b--;
		snprintf(want_item, sizeof(want_item), "%.*s", (int)(b - a), in + a);

		cr_assert_eq(sp_spec_parse(in, &s), 0);
		cr_expect_eq(s.n_items, 0, "%s: parsed as valid", in);
		cr_expect_eq(s.n_errors, 1, "%s: %zu errors", in, s.n_errors);
		if (s.n_errors == 1) {
			cr_expect_str_eq(s.errors[0].item, want_item, "%s", in);
			cr_expect(strstr(s.errors[0].message, invalid[i].msg),
				  "%s: message '%s' lacks '%s'", in, s.errors[0].message, invalid[i].msg);
			cr_expect(printable(s.errors[0].message), "%s: raw control byte in message", in);
		}
		sp_spec_free(&s);
	}
}

/* --------------------------------------------------------- separators */

Test(spec, separators)
{
	struct sp_spec s = { 0 };
	const char *want[] = { "uprobe:a:b", "uprobe:c:d=trace", "usdt:p:n", "uprobe:e:f", "uprobe:g:h" };

	cr_assert_eq(sp_spec_parse("uprobe:a:b;uprobe:c:d=trace\nusdt:p:n\r\n  uprobe:e:f \ruprobe:g:h", &s), 0);
	cr_assert_eq(s.n_errors, 0, "%s", s.n_errors ? s.errors[0].message : "");
	cr_assert_eq(s.n_items, 5);
	for (size_t i = 0; i < 5; i++)
		cr_expect_str_eq(s.items[i].text, want[i]);
	cr_expect_eq(s.items[1].action, SP_ACT_TRACE);
	cr_expect_eq(s.items[2].kind, SP_KIND_USDT);
	sp_spec_free(&s);
}

Test(spec, empty_items_are_skipped)
{
	const char *inputs[] = { "", " ", ";", ";;;", " ; \n\n\r\n\t;", "\n" };
	struct sp_spec s = { 0 };

	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		cr_assert_eq(sp_spec_parse(inputs[i], &s), 0);
		cr_expect_eq(s.n_items + s.n_errors, 0, "input %zu", i);
	}
	cr_assert_eq(sp_spec_parse(NULL, &s), 0);
	cr_expect_eq(s.n_items + s.n_errors, 0);
	cr_assert_eq(sp_spec_parse(";;uprobe:a:b;;", &s), 0);
	cr_expect_eq(s.n_items, 1);
	sp_spec_free(&s);
	cr_expect_eq(sp_spec_parse("uprobe:a:b", NULL), -EINVAL);
}

Test(spec, mixed_good_and_bad)
{
	struct sp_spec s = { 0 };

	cr_assert_eq(sp_spec_parse("uprobe:libc:malloc; bogus:x ;uprobe:libc:free=trace\n"
				   "uprobe:libc:=x;usdt:./app:test:usdt0", &s), 0);
	cr_assert_eq(s.n_items, 3);
	cr_expect_str_eq(s.items[0].name, "malloc");
	cr_expect_str_eq(s.items[1].name, "free");
	cr_expect_eq(s.items[1].action, SP_ACT_TRACE);
	cr_expect_str_eq(s.items[2].provider, "test");
	cr_assert_eq(s.n_errors, 2);
	cr_expect_str_eq(s.errors[0].item, "bogus:x");
	cr_expect(strstr(s.errors[0].message, "unknown probe kind 'bogus'"));
	cr_expect_str_eq(s.errors[1].item, "uprobe:libc:=x");
	cr_expect(strstr(s.errors[1].message, "missing location"), "%s", s.errors[1].message);
	sp_spec_free(&s);
	cr_expect_null(s.items);
	cr_expect_null(s.errors);
	cr_expect_eq(s.n_items + s.n_errors, 0);
}

Test(spec, results_are_appended)
{
	struct sp_spec s = { 0 };

	cr_assert_eq(sp_spec_parse("uprobe:a:b;bad", &s), 0);
	cr_assert_eq(sp_spec_parse("uprobe:c:d;worse;uprobe:e:f", &s), 0);
	cr_assert_eq(s.n_items, 3);
	cr_expect_str_eq(s.items[0].text, "uprobe:a:b");
	cr_expect_str_eq(s.items[1].text, "uprobe:c:d");
	cr_expect_str_eq(s.items[2].text, "uprobe:e:f");
	cr_assert_eq(s.n_errors, 2);
	cr_expect_str_eq(s.errors[0].item, "bad");
	cr_expect_str_eq(s.errors[1].item, "worse");
	sp_spec_free(&s);
}

/* Many items: the arrays grow past their first allocation. */
Test(spec, many_items)
{
	size_t n = 20000, len = 0;
	char *buf = malloc(n * 32);
	struct sp_spec s = { 0 };

	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(buf + len, i % 3 == 2 ? "bad%zu;" : "uprobe:lib:f%zu\n", i);
	cr_assert_eq(sp_spec_parse(buf, &s), 0);
	cr_expect_eq(s.n_items, n - n / 3);
	cr_expect_eq(s.n_errors, n / 3);
	cr_expect_str_eq(s.items[s.n_items - 1].name, "f19999");
	cr_expect_str_eq(s.errors[0].item, "bad2");
	sp_spec_free(&s);
	sp_free(buf);
}

/* A huge field: parsed whole, quoted short in the message. */
Test(spec, huge_item)
{
	size_t n = 1 << 20;
	char *buf = malloc(n + 32);
	struct sp_spec s = { 0 };

	strcpy(buf, "uprobe:libc:");
	memset(buf + 12, 'a', n);
	strcpy(buf + 12 + n, "+4");
	cr_assert_eq(sp_spec_parse(buf, &s), 0);
	cr_assert_eq(s.n_items, 1);
	cr_expect_eq(strlen(s.items[0].name), n);
	cr_expect_eq(s.items[0].offset, 4);
	sp_spec_free(&s);

	buf[12 + n / 2] = ' ';
	cr_assert_eq(sp_spec_parse(buf, &s), 0);
	cr_assert_eq(s.n_errors, 1);
	cr_expect_eq(strlen(s.errors[0].item), n + 14);
	cr_expect_lt(strlen(s.errors[0].message), 300, "message not cut: %zu bytes",
		     strlen(s.errors[0].message));
	cr_expect(strstr(s.errors[0].message, "whitespace in symbol name 'aaaa"));
	cr_expect(strstr(s.errors[0].message, "...'"));
	sp_spec_free(&s);
	sp_free(buf);
}

/* Arbitrary bytes: never a crash (the sanitizers watch), each non-empty item
 * is exactly one item or one error, every message printable. */
Test(spec, arbitrary_bytes)
{
	static const char alphabet[] = "uprobe:retsiondt0x+=;\n\r #@*?[]!-^_.$ \t\x01\xff/libc:count";
	uint64_t x = 0x9e3779b97f4a7c15ull;
	char buf[64];

	for (int c = 1; c < 256; c++) {
		struct sp_spec s = { 0 };
		buf[0] = (char)c;
		buf[1] = '\0';
		cr_assert_eq(sp_spec_parse(buf, &s), 0);
		cr_expect_leq(s.n_items + s.n_errors, 1);
		sp_spec_free(&s);
	}
	for (int round = 0; round < 20000; round++) {
		struct sp_spec s = { 0 };
		size_t len;
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		len = x % (sizeof(buf) - 1);
		for (size_t i = 0; i < len; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			buf[i] = (x >> 40) % 4 ? alphabet[(x >> 8) % (sizeof(alphabet) - 1)]
					       : (char)(1 + (x >> 16) % 255);
		}
		buf[len] = '\0';
		cr_assert_eq(sp_spec_parse(buf, &s), 0);
		for (size_t i = 0; i < s.n_errors; i++)
			cr_assert(printable(s.errors[i].message), "raw byte in '%s'", s.errors[i].message);
		for (size_t i = 0; i < s.n_items; i++)
			cr_assert(s.items[i].text && s.items[i].probe_text);
		sp_spec_free(&s);

		struct sp_spec_item it;
		char *err = NULL;
		int rc = sp_spec_parse_probe(buf, &it, &err);
		cr_assert(rc == 0 || (rc == -EINVAL && err), "rc %d", rc);
		sp_free(err);
		sp_spec_item_free(&it);
	}
}

/* ----------------------------------------------------------- @FILE */

Test(spec, file_with_comments)
{
	static const char content[] =
		"# libselfprobe spec file\n"
		"uprobe:libc:malloc   # every malloc\n"
		"\n"
		"  uretprobe:libz:deflate=latency ; usdt:./app:test:usdt0=trace\r\n"
		"# uprobe:libc:skipped;uprobe:libc:skipped_too\n"
		"bad:x#trailing\n"
		"uprobe:libc:free=./h.so:on_free";
	char *path = write_temp(content, sizeof(content) - 1);
	char spec[300];
	struct sp_spec s = { 0 };

	snprintf(spec, sizeof(spec), "  @%s \n", path);
	cr_assert_eq(sp_spec_load(spec, &s), 0);
	cr_assert_eq(s.n_items, 4);
	cr_expect_str_eq(s.items[0].text, "uprobe:libc:malloc");
	cr_expect_str_eq(s.items[1].text, "uretprobe:libz:deflate=latency");
	cr_expect_eq(s.items[1].action, SP_ACT_LATENCY);
	cr_expect_str_eq(s.items[2].text, "usdt:./app:test:usdt0=trace");
	cr_expect_str_eq(s.items[3].plugin_fn, "on_free");
	cr_assert_eq(s.n_errors, 1);
	cr_expect_str_eq(s.errors[0].item, "bad:x");
	sp_spec_free(&s);

	/* whitespace between '@' and the name */
	snprintf(spec, sizeof(spec), "@ %s", path);
	cr_assert_eq(sp_spec_load(spec, &s), 0);
	cr_expect_eq(s.n_items, 4);
	sp_spec_free(&s);
	unlink(path);
	sp_free(path);
}

Test(spec, missing_file)
{
	struct sp_spec s = { 0 };

	cr_assert_eq(sp_spec_load(" @/nonexistent/dir/x.probes ", &s), 0);
	cr_expect_eq(s.n_items, 0);
	cr_assert_eq(s.n_errors, 1);
	cr_expect_str_eq(s.errors[0].item, "@/nonexistent/dir/x.probes");
	cr_expect(strstr(s.errors[0].message, "'/nonexistent/dir/x.probes'"), "%s", s.errors[0].message);
	cr_expect(strstr(s.errors[0].message, strerror(ENOENT)), "%s", s.errors[0].message);
	sp_spec_free(&s);

	cr_assert_eq(sp_spec_load("@/tmp", &s), 0);
	cr_assert_eq(s.n_errors, 1);
	cr_expect(strstr(s.errors[0].message, strerror(EISDIR)), "%s", s.errors[0].message);
	sp_spec_free(&s);

	/* a long name is named whole: it is what the user must find */
	char name[512] = "@/nonexistent";
	while (strlen(name) < 300)   /* past QUOTE_MAX, the old cut */
		strcat(name, "/a-long-folder-name");
	strcat(name, "/end.probes");
	cr_assert_eq(sp_spec_load(name, &s), 0);
	cr_assert_eq(s.n_errors, 1);
	cr_expect(strstr(s.errors[0].message, name + 1), "%s", s.errors[0].message);
	sp_spec_free(&s);

	cr_assert_eq(sp_spec_load("@", &s), 0);
	cr_assert_eq(s.n_errors, 1);
	cr_expect(strstr(s.errors[0].message, "missing file name after '@'"));
	sp_spec_free(&s);
}

Test(spec, file_with_nul_byte)
{
	char *path = write_temp("uprobe:a:b\n\0uprobe:c:d\n", 23);
	char spec[300];
	struct sp_spec s = { 0 };

	snprintf(spec, sizeof(spec), "@%s", path);
	cr_assert_eq(sp_spec_load(spec, &s), 0);
	cr_expect_eq(s.n_items, 0);
	cr_assert_eq(s.n_errors, 1);
	cr_expect(strstr(s.errors[0].message, "NUL byte"), "%s", s.errors[0].message);
	sp_spec_free(&s);
	unlink(path);
	sp_free(path);
}

Test(spec, empty_file)
{
	char *path = write_temp("", 0);
	char spec[300];
	struct sp_spec s = { 0 };

	snprintf(spec, sizeof(spec), "@%s", path);
	cr_assert_eq(sp_spec_load(spec, &s), 0);
	cr_expect_eq(s.n_items + s.n_errors, 0);
	unlink(path);
	sp_free(path);
}

/* What the launcher's -f does (cli/specargs.c): the file read whole, its
 * comments blanked, parsed without '@' — the same items and errors as
 * "@FILE", so files can be joined with other items. */
Test(spec, file_read_and_blanked_as_at_file)
{
	static const char content[] =
		"# libselfprobe spec file\n"
		"uprobe:libc:malloc   # every malloc; uprobe:libc:not_an_item\n"
		"\n"
		"  uretprobe:libz:deflate=latency ; usdt:./app:test:usdt0=trace\r\n"
		"# uprobe:libc:skipped;uprobe:libc:skipped_too\n"
		"bad:x#trailing\n"
		"uprobe:libc:free=./h.so:on_free#";
	char *path = write_temp(content, sizeof(content) - 1);
	char spec[300], *text, *msg;
	struct sp_spec at = { 0 }, blanked = { 0 };

	snprintf(spec, sizeof(spec), "@%s", path);
	cr_assert_eq(sp_spec_load(spec, &at), 0);
	cr_assert_eq(sp_spec_read_file(path, &text, &msg), 0);
	cr_expect_str_eq(text, content);
	cr_expect(!sp_spec_is_program(text));
	sp_spec_blank_comments(text);
	cr_expect_eq(strlen(text), sizeof(content) - 1, "blanking keeps every line where it was");
	cr_assert_eq(sp_spec_parse(text, &blanked), 0);
	cr_assert_eq(blanked.n_items, at.n_items);
	for (size_t i = 0; i < at.n_items; i++)
		cr_expect_str_eq(blanked.items[i].text, at.items[i].text);
	cr_assert_eq(blanked.n_errors, at.n_errors);
	cr_expect_str_eq(blanked.errors[0].item, at.errors[0].item);
	sp_spec_free(&at);
	sp_spec_free(&blanked);
	sp_free(text);
	unlink(path);
	sp_free(path);

	cr_expect_eq(sp_spec_read_file("/nonexistent/dir/x.probes", &text, &msg), -EINVAL);
	cr_expect(!text && strstr(msg, "'/nonexistent/dir/x.probes'") && strstr(msg, strerror(ENOENT)), "%s", msg);
	sp_free(msg);
	path = write_temp("uprobe:a:b\n\0", 12);
	cr_expect_eq(sp_spec_read_file(path, &text, &msg), -EINVAL);
	cr_expect(!text && strstr(msg, "NUL byte"), "%s", msg);
	sp_free(msg);
	unlink(path);
	sp_free(path);
	cr_expect(sp_spec_is_program("uprobe:libc:malloc { @n = count(); }"));
}

/* Without '@', load is parse: no comments. */
Test(spec, load_without_file)
{
	struct sp_spec s = { 0 };

	cr_assert_eq(sp_spec_load("uprobe:a:b;uprobe:c:d # no comment here", &s), 0);
	cr_expect_eq(s.n_items, 1);
	cr_assert_eq(s.n_errors, 1);
	cr_expect(strstr(s.errors[0].message, "whitespace in symbol name 'd # no comment here'"),
		  "%s", s.errors[0].message);
	sp_spec_free(&s);
	cr_expect_eq(sp_spec_load("x", NULL), -EINVAL);
}

/* ----------------------------------------------------- parse_probe */

Test(spec, parse_probe)
{
	struct sp_spec_item it;
	char *err = NULL;

	cr_assert_eq(sp_spec_parse_probe("  usdt:./app:test:usdt0\t", &it, &err), 0);
	cr_expect_null(err);
	cr_expect_eq(it.kind, SP_KIND_USDT);
	cr_expect_str_eq(it.object, "./app");
	cr_expect_str_eq(it.provider, "test");
	cr_expect_str_eq(it.name, "usdt0");
	cr_expect_str_eq(it.text, "usdt:./app:test:usdt0");
	cr_expect_str_eq(it.probe_text, "usdt:./app:test:usdt0");
	cr_expect_eq(it.action, SP_ACT_COUNT);
	sp_spec_item_free(&it);
	cr_expect_null(it.text);
	cr_expect_null(it.name);

	cr_expect_eq(sp_spec_parse_probe("uprobe:libc:malloc=trace", &it, &err), -EINVAL);
	cr_assert_not_null(err);
	cr_expect_str_eq(err, "an action is not allowed here");
	cr_expect_null(it.text);
	sp_free(err);

	cr_expect_eq(sp_spec_parse_probe("uprobe:libc:malloc+0xZZ", &it, &err), -EINVAL);
	cr_assert_not_null(err);
	cr_expect(strstr(err, "bad offset '+0xZZ'"), "%s", err);
	sp_free(err);

	cr_expect_eq(sp_spec_parse_probe("uprobe:a:b;uprobe:c:d", &it, &err), -EINVAL);
	cr_assert_not_null(err);
	cr_expect(strstr(err, "only one probe"), "%s", err);
	sp_free(err);

	cr_expect_eq(sp_spec_parse_probe("  ", &it, &err), -EINVAL);
	cr_assert_not_null(err);
	cr_expect_str_eq(err, "empty probe");
	sp_free(err);

	cr_expect_eq(sp_spec_parse_probe(NULL, &it, &err), -EINVAL);
	sp_free(err);

	/* err may be NULL */
	cr_expect_eq(sp_spec_parse_probe("nope:x", &it, NULL), -EINVAL);
	cr_expect_eq(sp_spec_parse_probe("uprobe:x", &it, NULL), 0);
	cr_expect_str_eq(it.name, "x");
	sp_spec_item_free(&it);
}

/* Every invalid item without an action fails the same way in parse_probe. */
Test(spec, invalid_probes_via_parse_probe)
{
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		struct sp_spec_item it;
		char *err = NULL;
		if (strchr(invalid[i].in, '='))
			continue;
		cr_expect_eq(sp_spec_parse_probe(invalid[i].in, &it, &err), -EINVAL, "%s", invalid[i].in);
		cr_assert_not_null(err, "%s", invalid[i].in);
		cr_expect(strstr(err, invalid[i].msg), "%s: '%s' lacks '%s'", invalid[i].in, err,
			  invalid[i].msg);
		sp_free(err);
	}
}

Test(spec, names)
{
	cr_expect_str_eq(sp_kind_name(SP_KIND_UPROBE), "uprobe");
	cr_expect_str_eq(sp_kind_name(SP_KIND_URETPROBE), "uretprobe");
	cr_expect_str_eq(sp_kind_name(SP_KIND_USESSION), "usession");
	cr_expect_str_eq(sp_kind_name(SP_KIND_USDT), "usdt");
	cr_expect_str_eq(sp_kind_name((enum sp_probe_kind)42), "?");
	cr_expect_str_eq(sp_action_name(SP_ACT_COUNT), "count");
	cr_expect_str_eq(sp_action_name(SP_ACT_LATENCY), "latency");
	cr_expect_str_eq(sp_action_name(SP_ACT_TRACE), "trace");
	cr_expect_str_eq(sp_action_name(SP_ACT_STACK), "stack");
	cr_expect_str_eq(sp_action_name(SP_ACT_PLUGIN), "plugin");
	cr_expect_str_eq(sp_action_name((enum sp_action_kind)-1), "?");
}
