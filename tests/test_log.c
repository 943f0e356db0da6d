/* metrics.jsonl / eval.jsonl after a resume (td_jsonl_keep_steps): rows
 * past the checkpoint's step, repeated or out-of-order steps and a torn
 * last line go; a file with nothing to drop is left as it was; a missing
 * file is no error. A row that cannot be appended is an error. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokdrop/train/log.h"

static const char *write_file(const char *dir, const char *text)
{
    static char path[1024];
    snprintf(path, sizeof(path), "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_drops_rows_past_step(void **state)
{
    (void)state;
    const char *path = write_file(tu_tmpdir("log_past"),
                                  "{\"step\": 1, \"loss\": 3}\n"
                                  "{\"step\": 2, \"loss\": 2.5}\n"
                                  "{\"step\": 3, \"loss\": 2}\n"
                                  "{\"step\": 4, \"loss\": 1.5}\n"
                                  "{\"step\": 5, \"lo");
    int64_t dropped = -1;
    td_error err = {0};
    assert_int_equal(td_jsonl_keep_steps(path, 2, &dropped, &err), TD_OK);
    assert_int_equal(dropped, 3); /* steps 3 and 4, and the torn line */
    assert_string_equal(tu_read_text(path), "{\"step\": 1, \"loss\": 3}\n{\"step\": 2, \"loss\": 2.5}\n");
}

static void test_repeated_and_unordered_steps(void **state)
{
    (void)state;
    /* an earlier resume that appended without dropping */
    const char *path = write_file(tu_tmpdir("log_repeat"),
                                  "{\"step\": 10, \"x\": 1}\n"
                                  "{\"step\": 20, \"x\": 2}\n"
                                  "{\"step\": 15, \"x\": 3}\n"
                                  "{\"step\": 20, \"x\": 4}\n"
                                  "not json\n"
                                  "{\"step\": 25, \"x\": 5}\n");
    int64_t dropped = -1;
    td_error err = {0};
    assert_int_equal(td_jsonl_keep_steps(path, 100, &dropped, &err), TD_OK);
    assert_int_equal(dropped, 3);
    assert_string_equal(tu_read_text(path),
                        "{\"step\": 10, \"x\": 1}\n{\"step\": 20, \"x\": 2}\n{\"step\": 25, \"x\": 5}\n");
    /* from step 0 (no checkpoint): nothing is kept */
    assert_int_equal(td_jsonl_keep_steps(path, 0, &dropped, &err), TD_OK);
    assert_int_equal(dropped, 3);
    assert_string_equal(tu_read_text(path), "");
}

static void test_nothing_to_drop_and_missing(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("log_keep");
    const char *path = write_file(dir, "{\"step\": 1}\n{\"step\": 2}\n");
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    int64_t dropped = -1;
    td_error err = {0};
    assert_int_equal(td_jsonl_keep_steps(path, 2, &dropped, &err), TD_OK);
    assert_int_equal(dropped, 0);
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino); /* not rewritten */
    assert_string_equal(tu_read_text(path), "{\"step\": 1}\n{\"step\": 2}\n");

    char missing[1024];
    snprintf(missing, sizeof(missing), "%s/eval.jsonl", dir);
    assert_int_equal(td_jsonl_keep_steps(missing, 5, &dropped, &err), TD_OK);
    assert_int_equal(dropped, 0);
    assert_int_not_equal(access(missing, F_OK), 0);
}

static void test_unreadable(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("log_dir");
    char path[1024];
    snprintf(path, sizeof(path), "%s/metrics.jsonl", dir);
    assert_int_equal(mkdir(path, 0777), 0); /* a directory where the file should be */
    td_error err = {0};
    assert_int_not_equal(td_jsonl_keep_steps(path, 5, NULL, &err), TD_OK);
    assert_non_null(strstr(err.msg, "metrics.jsonl"));
}

/* A row that cannot be appended (the disk is full: a file size limit
 * stands in for it) is an error naming the file and the reason. */
static void test_append_fails(void **state)
{
    (void)state;
    const char *path = write_file(tu_tmpdir("log_full"), "{\"step\": 1}\n");
    td_jsonl j;
    td_error err = {0};
    assert_int_equal(td_jsonl_open(&j, NULL, path, &err), TD_OK);
    td_jsonl_begin(&j);
    td_jsonl_int(&j, "step", 2);
    assert_int_equal(td_jsonl_end(&j, &err), TD_OK);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    tu_file_limit_begin((long)sb.st_size + 4);
    td_jsonl_begin(&j);
    td_jsonl_int(&j, "step", 3);
    td_jsonl_str(&j, "note", "a row longer than the room that is left");
    td_status st = td_jsonl_end(&j, &err);
    tu_file_limit_end();
    assert_int_equal(st, TD_ERR_IO);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "cannot append a row: File too large"));
    td_jsonl_close(&j);
    /* the torn row goes when the run resumes */
    int64_t dropped = 0;
    assert_int_equal(td_jsonl_keep_steps(path, 10, &dropped, &err), TD_OK);
    assert_int_equal(dropped, 1);
    assert_string_equal(tu_read_text(path), "{\"step\": 1}\n{\"step\": 2}\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drops_rows_past_step),
        cmocka_unit_test(test_repeated_and_unordered_steps),
        cmocka_unit_test(test_nothing_to_drop_and_missing),
        cmocka_unit_test(test_unreadable),
        cmocka_unit_test(test_append_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
