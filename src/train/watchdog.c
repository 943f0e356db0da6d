/* The no-progress watchdog (see watchdog.h). */
#include "tokdrop/train/watchdog.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct td_watchdog {
    pthread_t thread;
    const td_dist *dist;
    double timeout_s;
    _Atomic double last_beat;
    _Atomic(const char *) phase;
    atomic_bool stop;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *watch(void *arg)
{
    td_watchdog *wd = arg;
    while (!atomic_load(&wd->stop)) {
        struct timespec pause = {0, 200 * 1000 * 1000};
        nanosleep(&pause, NULL);
        double idle = now_s() - atomic_load(&wd->last_beat);
        if (idle > wd->timeout_s) {
            char msg[256];
            snprintf(msg, sizeof(msg),
                     "no progress for %.0f s while %s; another rank has probably "
                     "failed or hangs; aborting the job (TOKDROP_TIMEOUT sets the limit)",
                     idle, atomic_load(&wd->phase));
            td_dist_abort(wd->dist, msg);
        }
    }
    return NULL;
}

td_watchdog *td_watchdog_start(const td_dist *dist, double timeout_s)
{
    if (timeout_s <= 0) return NULL;
    td_watchdog *wd = td_xcalloc(1, sizeof(*wd));
    wd->dist = dist;
    wd->timeout_s = timeout_s;
    atomic_store(&wd->last_beat, now_s());
    atomic_store(&wd->phase, "starting");
    if (pthread_create(&wd->thread, NULL, watch, wd) != 0) {
        free(wd);
        return NULL;
    }
    return wd;
}

void td_watchdog_beat(td_watchdog *wd, const char *phase)
{
    if (!wd) return;
    atomic_store(&wd->phase, phase);
    atomic_store(&wd->last_beat, now_s());
}

void td_watchdog_stop(td_watchdog *wd)
{
    if (!wd) return;
    atomic_store(&wd->stop, true);
    pthread_join(wd->thread, NULL);
    free(wd);
}
