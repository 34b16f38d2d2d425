/*
 * auth_int.h - auth/ internals that only auth/ and its unit tests
 * may use. Not part of the interface the SMTP session sees.
 */
#ifndef AUTH_AUTH_INT_H
#define AUTH_AUTH_INT_H

#include "auth/auth.h"

/*
 * auth_exchange_last_worker - the thread that ran the exchange's last
 * finished step: a test hook, so t/unit/auth.c can check that libsasl2
 * ran off the loop thread. Call it on the loop thread, between steps.
 */
uv_thread_t auth_exchange_last_worker(const struct auth_exchange *ex);

#endif
