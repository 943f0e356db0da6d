/* What the HDF5 harnesses (fuzz_ckpt.c, fuzz_shard.c) share: they build
 * each input's file with HDF5 from a description that the fuzz bytes edit,
 * so that what is fuzzed is our checks on what HDF5 returns (attributes
 * and datasets of any type, shape and value), not HDF5's own decoder.
 * Mutating the bytes of an HDF5 file tests mostly that decoder: in a
 * 150 s trial on tests/data/ckpt-v1.h5 (30,000 inputs) HDF5's metadata
 * checksums turned away nearly every mutant before our code saw it, and
 * td_ckpt_read_config reached 120 coverage edges, against 438 for
 * fuzz_ckpt in 60 s. */
#ifndef TOKDROP_FUZZ_H5_H
#define TOKDROP_FUZZ_H5_H

#include <hdf5.h>
#include <stdbool.h>
#include <stdint.h>

#include "fuzz_util.h"

typedef enum {
    FZ_I8, FZ_I16, FZ_I32, FZ_I64, FZ_U8, FZ_U64, FZ_F32, FZ_F64, FZ_STR, FZ_VSTR, FZ_N_TYPES
} fz_type;

#define FZ_MAX_ELEMS 4096 /* values of one object the harness holds */

/* One attribute or dataset: its type, its shape (ndim 0 is a scalar, up
 * to 3 dims), its numbers (converted to the type on write) or, for the
 * string types, its text (every element holds it). A dataset that is
 * `unwritten` is created with its shape but no data (HDF5 allocates it
 * late), so that it may claim more elements than the file holds. */
typedef struct {
    bool present;
    fz_type type;
    int ndim;
    hsize_t dims[3];
    int64_t nums[FZ_MAX_ELEMS];
    char text[256];
    bool unwritten;
} fz_obj;

/* A scalar integer or string object. */
void fz_obj_int(fz_obj *o, fz_type type, int64_t v);
void fz_obj_str(fz_obj *o, const char *text);

/* Elements of o's shape. */
uint64_t fz_obj_elems(const fz_obj *o);

/* One edit of o from the input: absent, another type, another shape
 * (small, or a huge unwritten one), a value changed, or the text taken
 * from the input. */
void fz_obj_edit(fz_obj *o, fz_bytes *b);

/* Writes o under name (in loc) as an attribute or a dataset; false when
 * HDF5 refuses (a name or shape it cannot store), which the harnesses
 * skip. Nothing is written when o is absent. */
bool fz_write_attr(hid_t loc, const char *name, const fz_obj *o);
bool fz_write_dataset(hid_t loc, const char *name, const fz_obj *o);

#endif
