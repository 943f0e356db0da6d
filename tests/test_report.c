/* The report sink and the abort hook of the base layer: lines reach the
 * installed sink with their level, nothing is printed without one, long
 * lines arrive whole, and a failed TD_ASSERT reports file:line then calls
 * the hook with its exit code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"
#include "tokdrop/base/error.h"
#include "tokdrop/train/log.h"
#include "tokdrop/base/report.h"

typedef struct {
    int n;
    td_report_level level;
    char line[8192];
} captured;

static void capture(void *user, td_report_level level, const char *line)
{
    captured *c = user;
    c->n++;
    c->level = level;
    snprintf(c->line, sizeof(c->line), "%s", line);
}

static void test_lines_reach_the_sink(void **state)
{
    (void)state;
    captured c = {0};
    td_report_set_sink(capture, &c);
    td_report(TD_REPORT_WARNING, "shard %d of %s", 3, "train");
    assert_int_equal(c.n, 1);
    assert_int_equal(c.level, TD_REPORT_WARNING);
    assert_string_equal(c.line, "shard 3 of train");
    td_log(NULL, "step %d", 7); /* no dist: any process is "rank 0" */
    assert_int_equal(c.n, 2);
    assert_int_equal(c.level, TD_REPORT_INFO);
    assert_string_equal(c.line, "step 7");

    char path[5000];
    memset(path, 'p', sizeof(path) - 1);
    path[sizeof(path) - 1] = '\0';
    td_report(TD_REPORT_INFO, "resuming from %s.", path);
    size_t n = strlen("resuming from ") + strlen(path) + 1; /* whole: past any fixed buffer */
    assert_int_equal(strlen(c.line), n);
    assert_int_equal(c.line[n - 1], '.');

    td_report_set_sink(NULL, NULL);
    td_report(TD_REPORT_FATAL, "dropped");
    assert_int_equal(c.n, 3);
    td_report_set_sink(td_report_stderr, "tokdrop");
}

static jmp_buf after_assert;
static int hook_code;

static void hook(int exit_code)
{
    hook_code = exit_code;
    longjmp(after_assert, 1);
}

static void test_assert_reports_then_calls_the_hook(void **state)
{
    (void)state;
    captured c = {0};
    td_report_set_sink(capture, &c);
    td_error_set_abort_hook(hook);
    volatile int reached = 0;
    if (setjmp(after_assert) == 0) {
        TD_ASSERT(reached == 1);
        reached = 2; /* never: the hook jumps out */
    }
    td_error_set_abort_hook(NULL);
    td_report_set_sink(td_report_stderr, "tokdrop");
    assert_int_equal(reached, 0);
    assert_int_equal(hook_code, TD_ASSERT_EXIT_CODE);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.level, TD_REPORT_FATAL);
    assert_non_null(strstr(c.line, "test_report.c:"));
    assert_non_null(strstr(c.line, "assertion failed: reached == 1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_reach_the_sink),
        cmocka_unit_test(test_assert_reports_then_calls_the_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
