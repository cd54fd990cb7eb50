/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* os-release syntax: quoting, comments, and refusing what only a shell would understand. */
#include <errno.h>
#include <string.h>

#include "tap.h"
#include "shared/envfile.h"

static int parses(const char *text, const char *key, const char *want)
{
	struct envfile e;
	const char *v;
	int ok;

	if (envfile_parse(text, &e, NULL) < 0)
		return 0;
	v = envfile_get(&e, key);
	ok = v && strcmp(v, want) == 0;
	envfile_done(&e);
	return ok;
}

int main(void)
{
	struct envfile e;
	unsigned line = 0;

	ok(parses("ID=debian\n", "ID", "debian"), "plain value");
	ok(parses("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n", "PRETTY_NAME",
		  "Debian GNU/Linux 12 (bookworm)"),
	   "double quotes");
	ok(parses("ID_LIKE='rhel fedora'\n", "ID_LIKE", "rhel fedora"), "single quotes");
	ok(parses("X=\"a \\\"q\\\" \\$HOME\"\n", "X", "a \"q\" $HOME"), "escapes in double quotes");
	ok(parses("# comment\n\n  ID=fedora  # trailing\n", "ID", "fedora"),
	   "comments, blank lines, blanks");
	ok(parses("ID=a\nID=b", "ID", "b"), "last assignment wins, no final newline");
	ok(parses("EMPTY=\n", "EMPTY", ""), "empty value");
	ok(envfile_parse("ID=$(rm -rf /)\n", &e, &line) == -EINVAL && line == 1,
	   "command substitution refused");
	ok(envfile_parse("A=1\nID=`id`\n", &e, &line) == -EINVAL && line == 2, "backticks refused");
	ok(envfile_parse("A=1\nnot a line\n", &e, &line) == -EINVAL && line == 2,
	   "a line without '=' refused");
	ok(envfile_parse("A-B=1\n", &e, &line) == -EINVAL, "a bad key refused");
	ok(envfile_parse("A=\"open\n", &e, &line) == -EINVAL, "an unterminated quote refused");
	ok(envfile_parse("A=x y\n", &e, &line) == -EINVAL, "unquoted blanks refused");
	return tap_done();
}
