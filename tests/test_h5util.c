/* The HDF5 writer (formats/h5util.h), which builds a file in memory and
 * writes it itself: the file is byte for byte the one HDF5 writes to disk
 * on its own (so the size it takes from the core driver is the file's),
 * with the default file access and with the checkpoints' (1.8 formats, no
 * block aggregation); a failed write leaves no file and no temporary one. */
#include "testutil.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/h5util.h"

#define N_DSETS 40

/* Groups, datasets of several sizes and types, string and number
 * attributes: what our files are made of. */
static void fill(td_h5_writer *w, const float *data)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    assert_true(lcpl >= 0);
    H5Pset_create_intermediate_group(lcpl, 1);
    w->lcpl = lcpl;
    td_h5_write_attr_str(w, "format", "tokdrop-test");
    const int32_t version = 3;
    td_h5_write_attr_num(w, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT32, &version);
    for (int i = 0; i < N_DSETS; i++) {
        char name[64];
        snprintf(name, sizeof(name), "g%d/sub/d%02d", i % 5, i);
        hsize_t dims[2] = {(hsize_t)(1 + i * 7), 13};
        td_h5_write_dataset(w, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, data);
    }
    td_h5_write_str_dataset(w, "config", "model:\n  hidden: 8\n");
    for (int i = 0; i < 12; i++) {
        char name[32], value[256];
        snprintf(name, sizeof(name), "note%d", i);
        memset(value, 'a' + i, (size_t)(1 + i * 19));
        value[1 + i * 19] = '\0';
        td_h5_write_attr_str(w, name, value);
    }
    H5Pclose(lcpl);
    w->lcpl = H5P_DEFAULT;
}

/* The same calls against a file HDF5 writes to disk itself (sec2). */
static void write_directly(const char *path, hid_t fapl, const float *data)
{
    td_h5_writer w = {.lcpl = H5P_DEFAULT, .cset = H5T_CSET_ASCII};
    size_t n = strlen(path);
    w.path = strcpy(malloc(n + 1), path);
    w.file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    assert_true(w.file >= 0);
    fill(&w, data);
    assert_int_equal(w.st, TD_OK);
    assert_true(H5Fclose(w.file) >= 0);
    free(w.path);
}

static void *read_all(const char *path, long *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *size = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc((size_t)*size + 1);
    assert_int_equal(fread(buf, 1, (size_t)*size, f), (size_t)*size);
    fclose(f);
    return buf;
}

static void same_bytes(hid_t fapl, const char *dir)
{
    float *data = malloc(N_DSETS * 7 * 13 * sizeof(float));
    tu_fill_uniform(data, N_DSETS * 7 * 13, -1, 1, 7);
    char ours[4096], theirs[4096];
    snprintf(ours, sizeof(ours), "%s/ours.h5", dir);
    snprintf(theirs, sizeof(theirs), "%s/theirs.h5", dir);
    td_error err = {0};
    td_h5_writer w;
    td_h5_quiet q = td_h5_quiet_begin();
    assert_int_equal(td_h5_writer_create(&w, ours, fapl, &err), TD_OK);
    fill(&w, data);
    assert_int_equal(td_h5_writer_close(&w), TD_OK);
    write_directly(theirs, fapl, data);
    td_h5_quiet_end(q);
    long n_ours, n_theirs;
    void *a = read_all(ours, &n_ours), *b = read_all(theirs, &n_theirs);
    assert_int_equal(n_ours, n_theirs);
    assert_memory_equal(a, b, (size_t)n_ours);
    free(a);
    free(b);
    free(data);
}

static void test_same_bytes_default(void **unused)
{
    (void)unused;
    same_bytes(H5P_DEFAULT, tu_tmpdir("h5util_default"));
}

static void test_same_bytes_v18_unaggregated(void **unused)
{
    (void)unused;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18);
    H5Pset_meta_block_size(fapl, 0);
    H5Pset_small_data_block_size(fapl, 0);
    same_bytes(fapl, tu_tmpdir("h5util_v18"));
    H5Pclose(fapl);
}

/* A write that fails (a full disk: a file size limit stands in for it)
 * names the file and the reason and leaves nothing behind; a leftover
 * temporary file of an earlier run is no obstacle. */
static void test_failed_write(void **unused)
{
    (void)unused;
    const char *dir = tu_tmpdir("h5util_fail");
    char path[4096], tmp[4096];
    snprintf(path, sizeof(path), "%s/f.h5", dir);
    snprintf(tmp, sizeof(tmp), "%s/.f.h5.tmp", dir);
    FILE *f = fopen(tmp, "wb");
    assert_non_null(f);
    fputs("left by a killed run", f);
    fclose(f);
    float *data = calloc(N_DSETS * 7 * 13, sizeof(float));
    td_error err = {0};
    td_h5_writer w;
    td_h5_quiet q = td_h5_quiet_begin();
    assert_int_equal(td_h5_writer_create(&w, path, H5P_DEFAULT, &err), TD_OK);
    fill(&w, data);
    tu_file_limit_begin(4096);
    td_status st = td_h5_writer_close(&w);
    tu_file_limit_end();
    td_h5_quiet_end(q);
    assert_int_equal(st, TD_ERR_IO);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "File too large"));
    assert_int_not_equal(access(path, F_OK), 0);
    assert_int_not_equal(access(tmp, F_OK), 0);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes_default),
        cmocka_unit_test(test_same_bytes_v18_unaggregated),
        cmocka_unit_test(test_failed_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
