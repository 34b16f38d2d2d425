/*
 * space.c - the free-space reserve of the spool: whether one more
 * message may be taken, from the free bytes the daemon last measured,
 * the reserve (queue_minfree) and the size the client announced.
 *
 * Why a reserve: Berkeley DB must never meet ENOSPC. A log or page
 * write that fails leaves a checkpoint undone or a page torn
 * (t/80-disk-full.t), and deleting delivered mail writes to the log
 * too, so a full disk would also stop the deliveries that free it. Mail
 * is refused with 452 4.3.1 well before that point (RFC 5321
 * §4.5.3.1.10, RFC 1870 §6.1, RFC 3463 X.3.1 "mail system full").
 *
 * Must not: do I/O, read the clock, or keep state; the caller measures
 * (mtad/spool_space.c) and replies (smtp/verbs.c).
 */
#include "policy/policy.h"

/* policy_space_verdict - see policy.h. */
bool policy_space_verdict(uint64_t avail, uint64_t reserve, uint64_t size)
{
	if (reserve == 0 || avail == POLICY_SPACE_UNKNOWN)
		return true;
	/* avail - size < reserve, without wrapping: */
	return avail >= reserve && avail - reserve >= size;
}
