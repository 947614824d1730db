/* A server whose functions reach every kind of symbol a compiler emits
 * references to: the test program for replacing every function while it
 * runs. One request per connection, answered on the main thread (so its
 * thread-local counters persist); each answer depends only on the requests
 * before it, so two instances given the same requests answer the same. */
#ifndef KINDS_H
#define KINDS_H

#include <stddef.h>

/* data.c: switch tables, const tables, static locals, weak, common and
 * hidden symbols, a cold path, an IFUNC of the program's own. */
int kinds_switch(int n);
const char *kinds_table(const char *name, int x, char *out, size_t len);
unsigned long kinds_static(void);
int kinds_const(void);
int kinds_weak(int x);
extern int kinds_common;
__attribute__((visibility("hidden"))) int kinds_hidden(int x);
int kinds_cold(int x);
int kinds_ifunc(int x);

/* tls.c: thread-local variables of the executable. */
unsigned long kinds_tls(void);

/* lib.c (libkinds.so, or linked in): libc data through the GOT, its own
 * thread-local variables, an exported IFUNC, IFUNCs of libc. */
extern __thread unsigned long lib_tls;
const char *lib_extern(char *out, size_t len);
unsigned long lib_tls_bump(void);
int lib_ifunc(int x);
size_t lib_strings(const char *s);

#endif
