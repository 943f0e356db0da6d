/* The file module (src/base/fs.h): an atomic write leaves the old file or the
 * new one, never a partial one, and no temporary file after a failure;
 * mkdir -p; path joining refuses to truncate; listing is sorted; a file
 * the user named opens only when it is a regular file. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"

static char *join(const char *dir, const char *name)
{
    static char buf[4][1024];
    static int k;
    char *out = buf[k++ % 4];
    size_t a = strlen(dir), b = strlen(name);
    assert_true(a + b + 2 <= sizeof(buf[0]));
    memmove(out, dir, a);
    out[a] = '/';
    memmove(out + a + 1, name, b + 1);
    return out;
}

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* Writes half of ctx, then fails as a writer would (e.g. disk full while
 * producing the content). */
static td_status fill_then_fail(FILE *f, const void *ctx, td_error *err)
{
    const char *text = ctx;
    fwrite(text, 1, strlen(text) / 2, f);
    fflush(f);
    return td_error_set(err, TD_ERR_IO, "simulated failure mid-write");
}

static void test_atomic_write_replaces(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("fs_replace");
    const char *path = join(dir, "config.yaml");
    td_error err = {0};
    assert_int_equal(td_fs_write_text(path, "old\n", &err), TD_OK);
    assert_string_equal(tu_read_text(path), "old\n");
    assert_int_equal(td_fs_write_text(path, "new content\n", &err), TD_OK);
    assert_string_equal(tu_read_text(path), "new content\n");
    char *tmp = td_fs_tmp_path(path);
    assert_string_equal(tmp, join(dir, ".config.yaml.tmp"));
    assert_false(exists(tmp));
    free(tmp);
    /* a bare name: the temporary goes beside it, in the current directory */
    tmp = td_fs_tmp_path("vocab.txt");
    assert_string_equal(tmp, ".vocab.txt.tmp");
    free(tmp);
}

static void test_failed_fill_keeps_old_file(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("fs_fail");
    const char *path = join(dir, "vocab.txt");
    td_error err = {0};
    assert_int_equal(td_fs_write_text(path, "[PAD]\n[UNK]\n", &err), TD_OK);
    assert_int_equal(td_fs_write_atomic(path, fill_then_fail, "a much longer new vocabulary\n", &err),
                     TD_ERR_IO);
    assert_non_null(strstr(err.msg, "simulated failure mid-write"));
    assert_string_equal(tu_read_text(path), "[PAD]\n[UNK]\n");
    assert_false(exists(join(dir, ".vocab.txt.tmp")));
    /* no old file: none afterwards either */
    const char *fresh = join(dir, "fresh.txt");
    assert_int_equal(td_fs_write_atomic(fresh, fill_then_fail, "text", &err), TD_ERR_IO);
    assert_false(exists(fresh));
    assert_false(exists(join(dir, ".fresh.txt.tmp")));
}

static void test_failed_rename_keeps_old_and_removes_tmp(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("fs_rename");
    /* a non-empty directory squats the final name: the rename fails */
    const char *path = join(dir, "model.safetensors");
    assert_int_equal(mkdir(path, 0777), 0);
    const char *inside = join(path, "keep-me");
    td_error err = {0};
    assert_int_equal(td_fs_write_text(inside, "x", &err), TD_OK);
    assert_int_equal(td_fs_write_text(path, "weights", &err), TD_ERR_IO);
    assert_non_null(strstr(err.msg, "rename"));
    assert_non_null(strstr(err.msg, path));
    assert_string_equal(tu_read_text(inside), "x");
    assert_false(exists(join(dir, ".model.safetensors.tmp")));

    /* the temporary cannot be created (the directory is missing) */
    const char *nodir = join(dir, "missing/config.json");
    assert_int_equal(td_fs_write_text(nodir, "{}", &err), TD_ERR_IO);
    assert_non_null(strstr(err.msg, nodir));
}

static int n_made;
static char made[8][1024];

static void record_made(void *ctx, const char *d)
{
    (void)ctx;
    if (n_made < 8) snprintf(made[n_made], sizeof(made[0]), "%s", d);
    n_made++;
}

static void test_mkdir_p(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("fs_mkdir");
    char nested[1024];
    snprintf(nested, sizeof(nested), "%s/a/b//c/", dir);
    td_error err = {0};
    n_made = 0;
    assert_int_equal(td_fs_mkdir_p(nested, record_made, NULL, &err), TD_OK);
    struct stat sb;
    assert_int_equal(stat(join(dir, "a/b/c"), &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(n_made, 3); /* outermost first, each once */
    assert_string_equal(made[0], join(dir, "a"));
    assert_string_equal(made[1], join(dir, "a/b"));
    assert_string_equal(made[2], join(dir, "a/b//c"));
    /* existing: fine, nothing made */
    n_made = 0;
    assert_int_equal(td_fs_mkdir_p(nested, record_made, NULL, &err), TD_OK);
    assert_int_equal(td_fs_mkdir_p(dir, NULL, NULL, &err), TD_OK);
    assert_int_equal(n_made, 0);
    /* a file in the way, at the end or in the middle */
    const char *file = join(dir, "file");
    assert_int_equal(td_fs_write_text(file, "x", &err), TD_OK);
    assert_int_equal(td_fs_mkdir_p(file, NULL, NULL, &err), TD_ERR_IO);
    assert_non_null(strstr(err.msg, "not a directory"));
    assert_int_equal(td_fs_mkdir_p(join(dir, "file/sub"), NULL, NULL, &err), TD_ERR_IO);
    assert_int_equal(td_fs_mkdir_p("", NULL, NULL, &err), TD_ERR_ARG);
}

static void test_join(void **state)
{
    (void)state;
    td_error err = {0};
    char out[16];
    assert_int_equal(td_fs_join(out, sizeof(out), "run", "config.yaml", &err), TD_OK);
    assert_string_equal(out, "run/config.yaml");
    assert_int_equal(td_fs_join(out, sizeof(out), "run/", "x", &err), TD_OK);
    assert_string_equal(out, "run/x");
    assert_int_equal(td_fs_join(out, sizeof(out), "", "x", &err), TD_OK);
    assert_string_equal(out, "x");
    assert_int_equal(td_fs_join(out, sizeof(out), "/", "x", &err), TD_OK);
    assert_string_equal(out, "/x");
    /* 15 bytes fit in 16; 16 do not, and nothing truncated is left */
    assert_int_equal(td_fs_join(out, sizeof(out), "abcdefg", "hijklmn", &err), TD_OK);
    assert_string_equal(out, "abcdefg/hijklmn");
    assert_int_equal(td_fs_join(out, sizeof(out), "abcdefg", "hijklmno", &err), TD_ERR_ARG);
    assert_string_equal(out, "");
    assert_non_null(strstr(err.msg, "longer than 15 bytes"));
    char *p = td_fs_join_alloc("checkpoints", "ckpt-00000001.h5");
    assert_string_equal(p, "checkpoints/ckpt-00000001.h5");
    free(p);
}

static void test_list_sorted(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("fs_list");
    const char *names[] = {"shard_10.h5", "b", ".hidden", "shard_02.h5", "a"};
    td_error err = {0};
    for (int i = 0; i < 5; i++) assert_int_equal(td_fs_write_text(join(dir, names[i]), "", &err), TD_OK);
    assert_int_equal(mkdir(join(dir, "sub"), 0777), 0);
    char **got;
    int64_t n;
    bool missing = true;
    assert_int_equal(td_fs_list(dir, &got, &n, &missing, &err), TD_OK);
    assert_false(missing);
    const char *want[] = {".hidden", "a", "b", "shard_02.h5", "shard_10.h5", "sub"};
    assert_int_equal(n, 6);
    for (int i = 0; i < 6; i++) assert_string_equal(got[i], want[i]);
    td_fs_list_free(got, n);
    /* missing: reported, or an error when the caller does not expect it */
    assert_int_equal(td_fs_list(join(dir, "none"), &got, &n, &missing, &err), TD_OK);
    assert_true(missing);
    assert_int_equal(n, 0);
    assert_int_equal(td_fs_list(join(dir, "none"), &got, &n, NULL, &err), TD_ERR_IO);
    assert_non_null(strstr(err.msg, "cannot list"));
}

/* Files named by the user: a regular one opens (empty too); a directory, a
 * FIFO (without blocking: no writer ever comes), a device and a missing
 * file are the caller's error code, naming the path, what it is and what
 * was expected. */
static void test_open_regular(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("fs_open");
    td_error err = {0};
    FILE *f = NULL;
    const char *text = join(dir, "a.txt"), *empty = join(dir, "empty.txt");
    assert_int_equal(td_fs_write_text(text, "x\n", &err), TD_OK);
    assert_int_equal(td_fs_write_text(empty, "", &err), TD_OK);
    assert_int_equal(td_fs_open_regular(&f, text, "a text", TD_ERR_IO, &err), TD_OK);
    assert_int_equal(fgetc(f), 'x');
    fclose(f);
    assert_int_equal(td_fs_open_regular(&f, empty, "a text", TD_ERR_IO, &err), TD_OK);
    assert_int_equal(fgetc(f), EOF);
    fclose(f);

    struct {
        const char *path, *says;
    } bad[] = {{dir, "is a directory, expected a text"},
               {join(dir, "fifo"), "is a FIFO, expected a text"},
               {"/dev/null", "is a device, expected a text"},
               {join(dir, "none"), "cannot open: No such file or directory; expected a text"}};
    assert_int_equal(mkfifo(bad[1].path, 0600), 0);
    for (int i = 0; i < 4; i++) {
        f = (FILE *)1;
        assert_int_equal(td_fs_open_regular(&f, bad[i].path, "a text", TD_ERR_CONFIG, &err), TD_ERR_CONFIG);
        assert_null(f);
        assert_non_null(strstr(err.msg, bad[i].path));
        assert_non_null(strstr(err.msg, bad[i].says));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_atomic_write_replaces),
        cmocka_unit_test(test_failed_fill_keeps_old_file),
        cmocka_unit_test(test_failed_rename_keeps_old_and_removes_tmp),
        cmocka_unit_test(test_mkdir_p),
        cmocka_unit_test(test_join),
        cmocka_unit_test(test_list_sorted),
        cmocka_unit_test(test_open_regular),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
