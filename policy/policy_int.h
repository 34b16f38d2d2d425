/*
 * policy_int.h - private to policy/: what the two login maps
 * (sender.c's sender_login_map, quota.c's send_limit_map) share.
 * Nothing outside policy/ includes this file.
 */
#ifndef POLICY_POLICY_INT_H
#define POLICY_POLICY_INT_H

#include <stddef.h>

/*
 * policy_login_find - index of the element of base[0..n) (each size
 * bytes, sorted by login without case, each starting with its
 * `char *login`) whose login is exactly login's first len bytes, any
 * case; n when there is none.
 */
size_t policy_login_find(const void *base, size_t n, size_t size, const char *login, size_t len);

#endif
