/* Declarations of the generated tables in unicode_tables.c (written by
 * data-prep/gen_unicode_tables.py); only unicode.c reads them. */
#ifndef TDP_UNICODE_TABLES_H
#define TDP_UNICODE_TABLES_H

#include <stdint.h>

extern const char tdp_uc_version[];
extern const int32_t tdp_uc_shift; /* block size of the two-stage tables is 1 << shift */

/* flags[cp] = stage2[stage1[cp >> shift] * block + (cp & (block - 1))] */
extern const uint16_t tdp_uc_flags_stage1[];
extern const uint8_t tdp_uc_flags_stage2[];
extern const uint16_t tdp_uc_ccc_stage1[];
extern const uint8_t tdp_uc_ccc_stage2[];

/* Sorted keys; vals pack (offset into pool << 2) | length. */
extern const uint32_t tdp_uc_lower_keys[];
extern const uint32_t tdp_uc_lower_vals[];
extern const uint32_t tdp_uc_lower_pool[];
extern const int32_t tdp_uc_n_lower;

/* Sorted keys; vals pack (offset into pool << 3) | length. */
extern const uint32_t tdp_uc_decomp_keys[];
extern const uint32_t tdp_uc_decomp_vals[];
extern const uint32_t tdp_uc_decomp_pool[];
extern const int32_t tdp_uc_n_decomp;


#endif
