/* The HDF5 file builder of the HDF5 harnesses (fuzz_h5.h). */
#include "fuzz_h5.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fz_obj_int(fz_obj *o, fz_type type, int64_t v)
{
    memset(o, 0, sizeof(*o));
    o->present = true;
    o->type = type;
    o->nums[0] = v;
}

void fz_obj_str(fz_obj *o, const char *text)
{
    memset(o, 0, sizeof(*o));
    o->present = true;
    o->type = FZ_STR;
    snprintf(o->text, sizeof(o->text), "%s", text);
}

uint64_t fz_obj_elems(const fz_obj *o)
{
    uint64_t n = 1;
    for (int i = 0; i < o->ndim; i++) n *= o->dims[i];
    return n;
}

void fz_obj_edit(fz_obj *o, fz_bytes *b)
{
    switch (fz_u8(b) % 6) {
    case 0: o->present = !o->present; break;
    case 1: o->type = (fz_type)(fz_u8(b) % FZ_N_TYPES); break;
    case 2: { /* a small shape, data kept where it fits */
        o->ndim = fz_u8(b) % 4;
        for (int i = 0; i < o->ndim; i++) o->dims[i] = fz_u8(b) % 10;
        if (fz_obj_elems(o) > FZ_MAX_ELEMS) o->ndim = 0;
        o->unwritten = false;
        break;
    }
    case 3: /* a huge first dimension, no data */
        if (o->ndim == 0) {
            o->ndim = 1;
            o->dims[0] = 1;
        }
        o->dims[0] = fz_u32(b) | ((hsize_t)(fz_u8(b) & 0x3f) << 32);
        o->unwritten = true;
        break;
    case 4: { /* one value */
        uint32_t i = fz_u32(b) % FZ_MAX_ELEMS;
        o->nums[i] = (int64_t)(int32_t)fz_u32(b) * (fz_u8(b) & 1 ? 1 : 1 << 16);
        break;
    }
    default: { /* the text: a length byte, then the bytes */
        size_t n = fz_u8(b) % sizeof(o->text);
        size_t k = 0;
        for (; k < n && b->n; k++) o->text[k] = (char)fz_u8(b);
        o->text[k] = '\0';
        break;
    }
    }
}

static hid_t file_type(fz_type t, size_t str_len)
{
    switch (t) {
    case FZ_I8: return H5Tcopy(H5T_STD_I8LE);
    case FZ_I16: return H5Tcopy(H5T_STD_I16LE);
    case FZ_I32: return H5Tcopy(H5T_STD_I32LE);
    case FZ_I64: return H5Tcopy(H5T_STD_I64LE);
    case FZ_U8: return H5Tcopy(H5T_STD_U8LE);
    case FZ_U64: return H5Tcopy(H5T_STD_U64LE);
    case FZ_F32: return H5Tcopy(H5T_IEEE_F32LE);
    case FZ_F64: return H5Tcopy(H5T_IEEE_F64LE);
    default: {
        hid_t s = H5Tcopy(H5T_C_S1);
        H5Tset_size(s, t == FZ_VSTR ? H5T_VARIABLE : str_len + 1);
        return s;
    }
    }
}

/* The elements of o in memory as the write wants them: int64 numbers,
 * fixed strings or pointers to the text; malloc'd. */
static void *mem_values(const fz_obj *o, uint64_t n, hid_t *mem_type, hid_t ftype)
{
    if (o->type < FZ_STR) {
        int64_t *v = calloc(n ? n : 1, sizeof(int64_t));
        memcpy(v, o->nums, (n < FZ_MAX_ELEMS ? n : FZ_MAX_ELEMS) * sizeof(int64_t));
        *mem_type = H5Tcopy(H5T_NATIVE_INT64);
        return v;
    }
    *mem_type = H5Tcopy(ftype);
    if (o->type == FZ_VSTR) {
        const char **v = malloc((n ? n : 1) * sizeof(char *));
        for (uint64_t i = 0; i < n; i++) v[i] = o->text;
        return v;
    }
    size_t len = strlen(o->text) + 1;
    char *v = calloc(n ? n : 1, len);
    for (uint64_t i = 0; i < n; i++) memcpy(v + i * len, o->text, len);
    return v;
}

static bool write_obj(hid_t loc, const char *name, const fz_obj *o, bool attr)
{
    if (!o->present) return true;
    hid_t space = o->ndim ? H5Screate_simple(o->ndim, o->dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t ftype = file_type(o->type, strlen(o->text));
    hid_t mtype = -1, id = -1;
    uint64_t n = fz_obj_elems(o);
    bool ok = space >= 0 && ftype >= 0;
    void *values = NULL;
    if (ok && attr) {
        ok = !o->unwritten && n <= FZ_MAX_ELEMS &&
             (id = H5Acreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT)) >= 0;
        if (ok) values = mem_values(o, n, &mtype, ftype);
        ok = ok && H5Awrite(id, mtype, values) >= 0;
        if (id >= 0) H5Aclose(id);
    } else if (ok) {
        ok = (id = H5Dcreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) >= 0;
        if (ok && !o->unwritten && n > 0 && n <= FZ_MAX_ELEMS) {
            values = mem_values(o, n, &mtype, ftype);
            ok = H5Dwrite(id, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) >= 0;
        }
        if (id >= 0) H5Dclose(id);
    }
    free(values);
    if (mtype >= 0) H5Tclose(mtype);
    if (ftype >= 0) H5Tclose(ftype);
    if (space >= 0) H5Sclose(space);
    return ok;
}

bool fz_write_attr(hid_t loc, const char *name, const fz_obj *o) { return write_obj(loc, name, o, true); }

bool fz_write_dataset(hid_t loc, const char *name, const fz_obj *o) { return write_obj(loc, name, o, false); }
