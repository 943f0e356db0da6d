/* A watchdog that keeps a job from hanging: a background thread aborts the
 * whole MPI job when this rank makes no progress (no td_watchdog_beat) for
 * the timeout, e.g. because another rank died inside a collective or a
 * file system stopped answering. Like NCCL's collective timeout, generous
 * by default: the program passes TOKDROP_TIMEOUT seconds (default 1800). */
#ifndef TOKDROP_WATCHDOG_H
#define TOKDROP_WATCHDOG_H

#include "tokdrop/train/dist.h"

typedef struct td_watchdog td_watchdog;

#define TD_WATCHDOG_DEFAULT_S 1800.0

/* Starts the thread; NULL when disabled (timeout_s <= 0). */
td_watchdog *td_watchdog_start(const td_dist *dist, double timeout_s);
/* Records progress; phase (a string literal) is named if the timeout hits. */
void td_watchdog_beat(td_watchdog *wd, const char *phase);
void td_watchdog_stop(td_watchdog *wd);

#endif
