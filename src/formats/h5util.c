/* Internal HDF5 plumbing (h5util.h): failure messages from HDF5's error
 * stack, silencing its automatic printing, id cleanup, and the typed writes
 * and reads every HDF5 file of ours is made of. */
#include "formats/h5util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fs.h"

static herr_t why_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    td_h5_why *w = data;
    if (!e->desc) return 0;
    if (n == 0) {
        snprintf(w->desc, sizeof(w->desc), "%s", e->desc);
        /* our messages are one line; some of HDF5's span several */
        for (char *c = w->desc; *c; c++)
            if (*c == '\n' || *c == '\r') *c = ' ';
    }
    if (strstr(e->desc, "truncated")) w->truncated = true;
    return 0;
}

td_h5_why td_h5_get_why(void)
{
    td_h5_why w = {"no detail", false};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, why_cb, &w);
    return w;
}

td_status td_h5_fail(td_error *err, const char *path, const char *what, const char *call,
                     const char *file, int line)
{
    td_h5_why w = td_h5_get_why();
    const char *slash = strrchr(file, '/');
    const char *base = slash ? slash + 1 : file;
    if (what)
        return td_error_set(err, TD_ERR_IO, "%s: %s: HDF5 call %s failed: %s (%s:%d)", path, what,
                            call, w.desc, base, line);
    return td_error_set(err, TD_ERR_IO, "%s: HDF5 call %s failed: %s (%s:%d)", path, call, w.desc,
                        base, line);
}

td_h5_quiet td_h5_quiet_begin(void)
{
    td_h5_quiet q = {NULL, NULL};
    H5Eget_auto2(H5E_DEFAULT, &q.fn, &q.data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return q;
}

void td_h5_quiet_end(td_h5_quiet q)
{
    H5Eset_auto2(H5E_DEFAULT, q.fn, q.data);
}

void td_h5_close_id(hid_t id, herr_t (*close_fn)(hid_t))
{
    if (id >= 0) close_fn(id);
}

/* ---- writing ------------------------------------------------------------------ */

/* The file a writer builds, in memory: the core driver (no backing store)
 * keeps the whole file in one buffer that it grows through these
 * callbacks, so HDF5 itself never writes to disk. A full disk (or any
 * other write error) then cannot make H5Fclose fail: HDF5 1.10 leaves the
 * id of a file whose close failed in its tables, pointing at freed memory,
 * and its clean-up at exit crashes on it (SIGSEGV, or "infinite loop
 * closing library"). The file reaches the disk through fs.h instead, whose
 * errors are ours to report. */
struct td_h5_image {
    unsigned char *buf;
    size_t n_bytes;   /* the file's size: the driver's end of file */
    size_t capacity;  /* of buf */
    bool released;    /* the driver let go of buf at H5Fclose: ours to write and free */
};

static void *image_malloc(size_t size, H5FD_file_image_op_t op, void *udata)
{
    (void)op;
    (void)udata;
    return malloc(size);
}

static void *image_memcpy(void *dest, const void *src, size_t size, H5FD_file_image_op_t op,
                          void *udata)
{
    (void)op;
    (void)udata;
    return memcpy(dest, src, size);
}

/* The driver asks for exactly its new end of file (its increment is 1);
 * the buffer grows geometrically, so that a file written in many pieces
 * is not copied once per piece. */
static void *image_realloc(void *ptr, size_t size, H5FD_file_image_op_t op, void *udata)
{
    (void)op;
    struct td_h5_image *im = udata;
    if (ptr != im->buf) return realloc(ptr, size); /* not the file's buffer */
    if (size > im->capacity) {
        size_t cap = im->capacity > SIZE_MAX / 2 ? size : im->capacity * 2;
        if (cap < size) cap = size;
        if (cap < 4096) cap = 4096;
        unsigned char *p = realloc(im->buf, cap);
        if (!p) return NULL;
        im->buf = p;
        im->capacity = cap;
    }
    im->n_bytes = size;
    return im->buf;
}

static herr_t image_free(void *ptr, H5FD_file_image_op_t op, void *udata)
{
    (void)op;
    struct td_h5_image *im = udata;
    if (ptr && ptr == im->buf)
        im->released = true;
    else
        free(ptr);
    return 0;
}

/* The image outlives every property list that names it. */
static void *image_udata_copy(void *udata)
{
    return udata;
}

static herr_t image_udata_free(void *udata)
{
    (void)udata;
    return 0;
}

static td_status fill_image(FILE *f, const void *ctx, td_error *err)
{
    (void)err; /* a failed fwrite is seen by td_fs_write_atomic through ferror */
    const struct td_h5_image *im = ctx;
    if (im->n_bytes > 0) fwrite(im->buf, 1, im->n_bytes, f);
    return TD_OK;
}

static void w_fail(td_h5_writer *w, const char *what, const char *call, int line)
{
    if (w->st == TD_OK) w->st = td_h5_fail(w->err, w->path, what, call, __FILE__, line);
}

/* fapl (or the default) with the file built in memory, in im. */
static hid_t image_fapl(hid_t fapl, struct td_h5_image *im)
{
    hid_t f = fapl == H5P_DEFAULT ? H5Pcreate(H5P_FILE_ACCESS) : H5Pcopy(fapl);
    H5FD_file_image_callbacks_t cb = {image_malloc,     image_memcpy,     image_realloc, image_free,
                                      image_udata_copy, image_udata_free, im};
    if (f >= 0 && (H5Pset_fapl_core(f, 1, 0) < 0 || H5Pset_file_image_callbacks(f, &cb) < 0)) {
        H5Pclose(f);
        f = -1;
    }
    return f;
}

td_status td_h5_writer_create(td_h5_writer *w, const char *path, hid_t fapl, td_error *err)
{
    *w = (td_h5_writer){.file = -1, .lcpl = H5P_DEFAULT, .cset = H5T_CSET_ASCII, .err = err};
    size_t n = strlen(path);
    w->path = memcpy(td_xmalloc(n + 1), path, n + 1);
    w->image = td_xcalloc(1, sizeof(*w->image));
    /* The core driver reads a file of the name it is given, if there is
     * one, before it truncates it: the temporary name, whose leftover from
     * an interrupted write goes first, is one that holds nothing of value. */
    char *tmp = td_fs_tmp_path(path);
    td_fs_discard(tmp);
    hid_t f = image_fapl(fapl, w->image);
    if (f < 0) {
        w_fail(w, "file", "H5Pset_fapl_core/H5Pset_file_image_callbacks", __LINE__);
    } else {
        w->file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, f);
        if (w->file < 0) w_fail(w, "file", "H5Fcreate", __LINE__);
        H5Pclose(f);
    }
    free(tmp);
    return w->st;
}

td_status td_h5_writer_close(td_h5_writer *w)
{
    struct td_h5_image *im = w->image;
    if (w->file >= 0) {
        /* in memory: fails only for want of memory */
        if (H5Fclose(w->file) < 0) w_fail(w, "file", "H5Fclose", __LINE__);
        if (w->st == TD_OK && !im->released)
            w->st = td_error_set(w->err, TD_ERR_IO, "%s: HDF5 closed the file but kept its image",
                                 w->path);
        if (w->st == TD_OK) w->st = td_fs_write_atomic(w->path, fill_image, im, w->err);
    }
    w->file = -1;
    /* a buffer HDF5 still holds (its close failed) is not ours to free */
    if (im && (im->released || !im->buf)) free(im->buf);
    free(im);
    free(w->path);
    w->image = NULL;
    w->path = NULL;
    return w->st;
}

void td_h5_write_attr_str(td_h5_writer *w, const char *name, const char *value)
{
    if (w->st != TD_OK) return;
    hid_t type = H5Tcopy(H5T_C_S1), space = H5Screate(H5S_SCALAR), attr = -1;
    if (type < 0 || space < 0 || H5Tset_size(type, strlen(value) + 1) < 0 ||
        H5Tset_cset(type, w->cset) < 0) {
        w_fail(w, name, "H5Tcopy/H5Screate", __LINE__);
    } else {
        attr = H5Acreate2(w->file, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
        if (attr < 0 || H5Awrite(attr, type, value) < 0)
            w_fail(w, name, "H5Acreate2/H5Awrite", __LINE__);
    }
    if (attr >= 0 && H5Aclose(attr) < 0) w_fail(w, name, "H5Aclose", __LINE__);
    td_h5_close_id(space, H5Sclose);
    td_h5_close_id(type, H5Tclose);
}

void td_h5_write_attr_num(td_h5_writer *w, const char *name, hid_t file_type, hid_t mem_type,
                          const void *value)
{
    if (w->st != TD_OK) return;
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr =
        space < 0 ? -1 : H5Acreate2(w->file, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0 || H5Awrite(attr, mem_type, value) < 0)
        w_fail(w, name, "H5Acreate2/H5Awrite", __LINE__);
    if (attr >= 0 && H5Aclose(attr) < 0) w_fail(w, name, "H5Aclose", __LINE__);
    td_h5_close_id(space, H5Sclose);
}

/* Creates and writes one dataset of the given space; with_data false
 * leaves it empty. */
static void write_dataset(td_h5_writer *w, const char *name, hid_t file_type, hid_t mem_type,
                          hid_t space, bool with_data, const void *data)
{
    hid_t ds = H5Dcreate2(w->file, name, file_type, space, w->lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (ds < 0)
        w_fail(w, name, "H5Dcreate2", __LINE__);
    else if (with_data && H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        w_fail(w, name, "H5Dwrite", __LINE__);
    if (ds >= 0 && H5Dclose(ds) < 0) w_fail(w, name, "H5Dclose", __LINE__);
}

void td_h5_write_dataset(td_h5_writer *w, const char *name, hid_t file_type, hid_t mem_type,
                         int ndim, const hsize_t *dims, const void *data)
{
    if (w->st != TD_OK) return;
    hsize_t n_elems = 1;
    for (int d = 0; d < ndim; d++) n_elems *= dims[d];
    hid_t space = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, dims, NULL);
    if (space < 0)
        w_fail(w, name, "H5Screate", __LINE__);
    else
        write_dataset(w, name, file_type, mem_type, space, n_elems > 0, data);
    td_h5_close_id(space, H5Sclose);
}

void td_h5_write_str_dataset(td_h5_writer *w, const char *name, const char *text)
{
    if (w->st != TD_OK) return;
    hid_t type = H5Tcopy(H5T_C_S1), space = H5Screate(H5S_SCALAR);
    if (type < 0 || space < 0 || H5Tset_size(type, strlen(text) + 1) < 0)
        w_fail(w, name, "H5Tcopy/H5Tset_size", __LINE__);
    else
        write_dataset(w, name, type, type, space, true, text);
    td_h5_close_id(space, H5Sclose);
    td_h5_close_id(type, H5Tclose);
}

void td_h5_write_group(td_h5_writer *w, const char *name, hid_t gcpl)
{
    if (w->st != TD_OK) return;
    hid_t g = H5Gcreate2(w->file, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    if (g < 0) w_fail(w, name, "H5Gcreate2", __LINE__);
    td_h5_close_id(g, H5Gclose);
}

/* ---- reading ------------------------------------------------------------------ */

td_status td_h5_attr_exists(bool *found, hid_t loc, const char *path, const char *name, td_error *err)
{
    td_status st = TD_OK;
    htri_t exists = 0;
    TD_H5(path, "attribute", exists = H5Aexists(loc, name));
done:
    *found = exists > 0;
    return st;
}

td_status td_h5_read_attr(void *out, size_t out_len, hid_t mem_type, hid_t loc, const char *path,
                          const char *name, td_error *err)
{
    td_status st = TD_OK;
    hid_t attr = -1, type = -1, space = -1, str_type = -1;
    char what[128];
    snprintf(what, sizeof(what), "attribute %s", name);
    htri_t exists;
    TD_H5(path, what, exists = H5Aexists(loc, name));
    if (!exists) {
        st = td_error_set(err, TD_ERR_FORMAT, "%s: attribute %s missing", path, name);
        goto done;
    }
    TD_H5(path, what, attr = H5Aopen(loc, name, H5P_DEFAULT));
    TD_H5(path, what, type = H5Aget_type(attr));
    TD_H5(path, what, space = H5Aget_space(attr));
    H5T_class_t cls = H5Tget_class(type);
    const bool want_str = mem_type < 0;
    if (H5Sget_simple_extent_npoints(space) != 1 || cls != (want_str ? H5T_STRING : H5T_INTEGER)) {
        st = td_error_set(err, TD_ERR_FORMAT, "%s: attribute %s is not a scalar %s", path, name,
                          want_str ? "string" : "integer");
        goto done;
    }
    if (want_str) {
        htri_t vlen;
        H5T_cset_t cset; /* ASCII or UTF-8: HDF5 converts neither into the other */
        TD_H5(path, what, vlen = H5Tis_variable_str(type));
        TD_H5(path, what, cset = H5Tget_cset(type));
        TD_H5(path, what, str_type = H5Tcopy(H5T_C_S1));
        TD_H5(path, what, H5Tset_cset(str_type, cset));
        if (vlen) { /* as h5py writes them */
            char *s = NULL;
            TD_H5(path, what, H5Tset_size(str_type, H5T_VARIABLE));
            TD_H5(path, what, H5Aread(attr, str_type, &s));
            size_t n = s ? strlen(s) : 0;
            if (n < out_len) memcpy(out, s ? s : "", n + 1);
            H5free_memory(s);
            if (n >= out_len) {
                st = td_error_set(err, TD_ERR_FORMAT, "%s: attribute %s is %zu bytes, expected < %zu",
                                  path, name, n, out_len);
                goto done;
            }
        } else {
            size_t size = H5Tget_size(type);
            if (size == 0 || size >= out_len) {
                st = td_error_set(err, TD_ERR_FORMAT, "%s: attribute %s is %zu bytes, expected < %zu",
                                  path, name, size, out_len);
                goto done;
            }
            TD_H5(path, what, H5Tset_size(str_type, size));
            TD_H5(path, what, H5Aread(attr, str_type, out));
            ((char *)out)[size] = '\0';
        }
    } else {
        TD_H5(path, what, H5Aread(attr, mem_type, out));
    }
done:
    td_h5_close_id(str_type, H5Tclose);
    td_h5_close_id(space, H5Sclose);
    td_h5_close_id(type, H5Tclose);
    td_h5_close_id(attr, H5Aclose);
    return st;
}

td_status td_h5_read_str_dataset(char **out, hid_t loc, const char *path, const char *name,
                                 uint64_t max_bytes, td_error *err)
{
    td_status st = TD_OK;
    hid_t ds = -1, type = -1, space = -1, str_type = -1;
    char *text = NULL;
    char what[128];
    snprintf(what, sizeof(what), "dataset %s", name);
    htri_t exists;
    TD_H5(path, what, exists = H5Lexists(loc, name, H5P_DEFAULT));
    if (!exists) {
        st = td_error_set(err, TD_ERR_FORMAT, "%s: dataset %s missing", path, name);
        goto done;
    }
    TD_H5(path, what, ds = H5Dopen2(loc, name, H5P_DEFAULT));
    TD_H5(path, what, type = H5Dget_type(ds));
    TD_H5(path, what, space = H5Dget_space(ds));
    size_t size = H5Tget_size(type);
    if (H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) != 0 ||
        H5Sget_simple_extent_type(space) != H5S_SCALAR || size == 0 || size > max_bytes) {
        st = td_error_set(err, TD_ERR_FORMAT,
                          "%s: dataset %s is not a scalar fixed-length string", path, name);
        goto done;
    }
    TD_H5(path, what, str_type = H5Tcopy(H5T_C_S1));
    TD_H5(path, what, H5Tset_size(str_type, size));
    text = malloc(size + 1);
    if (!text) {
        st = td_error_set(err, TD_ERR_NOMEM, "%s: no memory for the %zu-byte dataset %s", path,
                          size, name);
        goto done;
    }
    TD_H5(path, what, H5Dread(ds, str_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, text));
    text[size] = '\0';
    *out = text;
    text = NULL;
done:
    free(text);
    td_h5_close_id(str_type, H5Tclose);
    td_h5_close_id(space, H5Sclose);
    td_h5_close_id(type, H5Tclose);
    td_h5_close_id(ds, H5Dclose);
    return st;
}
