/* libauth: password checks in a shared library. */
#ifndef AUTH_H
#define AUTH_H

/* Checks made so far; the executable reads it (a copy-relocated variable
 * when it is not position-independent). */
extern unsigned long auth_checks;

int auth_check(const char *user, const char *pass);

#endif
