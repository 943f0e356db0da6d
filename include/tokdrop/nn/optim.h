/* LAMB and AdamW over the flat parameter block (SPEC section 3), global-norm
 * gradient clipping and the warmup + polynomial-decay learning rate. */
#ifndef TOKDROP_OPTIM_H
#define TOKDROP_OPTIM_H

#include <stdint.h>

#include "tokdrop/base/tensor.h"

typedef enum { TD_OPTIM_LAMB = 0, TD_OPTIM_ADAMW } td_optim_kind;

typedef struct {
    td_optim_kind name;
    double lr;
    double end_lr;
    int64_t warmup_steps;
    double power;
    double beta1;
    double beta2;
    double eps;
    double weight_decay;
    double max_grad_norm;
} td_optim_config;


typedef struct {
    td_optim_config cfg;
    int64_t total_steps;
    int64_t n_params;
    float *m;  /* (n_params) first moment, same layout as the parameters */
    float *v;  /* (n_params) second moment */
    int64_t t; /* steps taken so far, skipped ones included; the next is t + 1 */
} td_optim;

void td_optim_init(td_optim *opt, const td_optim_config *cfg, int64_t total_steps,
                   int64_t n_params);
void td_optim_free(td_optim *opt);

/* Learning rate of the t-th update (t >= 1). */
double td_optim_lr(const td_optim_config *cfg, int64_t total_steps, int64_t t);

/* L2 norm of a flat array, accumulated in double. */
double td_optim_norm(const float *x, int64_t n_elems);

/* One update: clips grads by global norm (max_grad_norm, skipped when <= 0),
 * then LAMB or AdamW per tensor. grads is modified (clipped). Returns the
 * gradient norm before clipping; *lr_out (may be NULL) gets the lr used.
 * A non-finite norm skips the step (td_optim_skip) and is returned as is. */
double td_optim_step(td_optim *opt, float *params, float *grads, const td_tensor_info *tensors,
                     int n_tensors, double *lr_out);

/* A step without an update (a non-finite loss or gradient): parameters and
 * moments stay as they are, but t advances, so the learning-rate schedule
 * follows the step count and a resume, which sets t from the step, agrees
 * with an uninterrupted run. *lr_out (may be NULL) gets the step's lr. */
void td_optim_skip(td_optim *opt, double *lr_out);

#endif
