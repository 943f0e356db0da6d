/* Helpers shared by the data-prep test programs (cmocka needs these
 * includes in this order). */
#ifndef TDP_PREP_TESTUTIL_H
#define TDP_PREP_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "wordpiece.h"

/* A fresh, empty directory TDP_TEST_TMPDIR/name; the string is static. */
const char *pt_tmpdir(const char *name);

/* Writes n_bytes to dir/name and returns the path (static buffer, one of a
 * few rotating ones). */
const char *pt_write_file(const char *dir, const char *name, const char *data, size_t n_bytes);

/* A vocabulary of the special tokens followed by the given tokens. */
void pt_vocab(tdp_vocab *v, const char *const *tokens, int64_t n);

/* The tokens of one line, joined by single spaces, into out. */
void pt_tokenize(char *out, size_t out_size, const tdp_vocab *v, int lower_case, const char *line);

/* Up to max_files regular files of the python3.11 documentation corpus in
 * sorted order (paths are static). Returns the count. */
int64_t pt_doc_files(const char **paths, int64_t max_files, int64_t max_bytes);

#endif
