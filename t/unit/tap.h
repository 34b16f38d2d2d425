/*
 * tap.h - a minimal Test Anything Protocol emitter for the C unit tests.
 * Header-only; each test program is one file under t/unit/ and prints
 * "1..N" at the end (done_testing) so tables can grow freely.
 */
#ifndef T_TAP_H
#define T_TAP_H

#include <stdio.h>
#include <string.h>

struct tap { int n; int failed; };

#define TAP_OK(t, cond, ...) tap_ok((t), (cond) ? 1 : 0, __FILE__, __LINE__, __VA_ARGS__)

static inline void tap_ok(struct tap *t, int ok, const char *file, int line,
			  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#include <stdarg.h>
static inline void tap_ok(struct tap *t, int ok, const char *file, int line,
			  const char *fmt, ...)
{
	va_list ap;

	t->n++;
	printf("%sok %d - ", ok ? "" : "not ", t->n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!ok) {
		t->failed++;
		printf("#   Failed at %s line %d\n", file, line);
	}
	fflush(stdout);
}

static inline int tap_done(struct tap *t)
{
	printf("1..%d\n", t->n);
	return t->failed ? 1 : 0;
}

#endif
