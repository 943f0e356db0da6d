/* The shards pipeline (shards.h): corpus -> document split -> instances ->
 * shuffle -> shard files, each stage parallel over --jobs threads where the
 * work allows, each deterministic. */
#include "shards.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corpus.h"
#include "base/fs.h"
#include "input.h"
#include "shard_writer.h"
#include "tokdrop/base/hash.h"
#include "util.h"
#include "wordpiece.h"

td_status tdp_shards_check_options(const tdp_shards_options *o, td_error *err)
{
    const tdp_instance_options *i = &o->inst;
    if (i->seq_len < 5 || i->seq_len > 65536)
        return td_error_set(err, TD_ERR_ARG, "--seq-len %lld: expected 5..65536 ([CLS] A [SEP] B "
                            "[SEP] needs at least 5)", (long long)i->seq_len);
    if (i->max_pred < 1 || i->max_pred > i->seq_len)
        return td_error_set(err, TD_ERR_ARG, "--max-pred %lld: expected 1..seq-len (%lld)",
                            (long long)i->max_pred, (long long)i->seq_len);
    if (i->dupe_factor < 1 || i->dupe_factor > 1000)
        return td_error_set(err, TD_ERR_ARG, "--dupe-factor %lld: expected 1..1000",
                            (long long)i->dupe_factor);
    if (!(i->short_seq_prob >= 0.0 && i->short_seq_prob <= 1.0))
        return td_error_set(err, TD_ERR_ARG, "--short-seq-prob %g: expected a probability in "
                            "[0, 1]", i->short_seq_prob);
    if (!(i->masked_lm_prob > 0.0 && i->masked_lm_prob <= 1.0))
        return td_error_set(err, TD_ERR_ARG, "masked LM probability %g: expected (0, 1]",
                            i->masked_lm_prob);
    if (!(o->eval_fraction >= 0.0 && o->eval_fraction < 1.0))
        return td_error_set(err, TD_ERR_ARG, "--eval-fraction %g: expected [0, 1)",
                            o->eval_fraction);
    if (o->n_shards < 0 || o->n_shards > 1000000)
        return td_error_set(err, TD_ERR_ARG, "--shards %lld: expected 1..1000000 (or 0 for "
                            "automatic)", (long long)o->n_shards);
    if (o->n_jobs < 1 || o->n_jobs > 4096)
        return td_error_set(err, TD_ERR_ARG, "--jobs %d: expected 1..4096", o->n_jobs);
    return TD_OK;
}

/* Shards of an earlier run would be read with the new ones (the trainer
 * globs the directory), so shard_*.h5 files there, and the temporary files
 * of interrupted writes, are removed first. */
static td_status remove_old_shards(const char *dir, int64_t *n_removed, td_error *err)
{
    char **names;
    int64_t n_names;
    bool missing;
    td_status st = td_fs_list(dir, &names, &n_names, &missing, err);
    for (int64_t i = 0; i < n_names && st == TD_OK; i++) {
        const char *n = names[i];
        size_t len = strlen(n);
        int ours = (strncmp(n, "shard_", 6) == 0 && len > 3 && strcmp(n + len - 3, ".h5") == 0) ||
                   ((strncmp(n, "shard_", 6) == 0 || strncmp(n, ".shard_", 7) == 0) && len > 7 &&
                    strcmp(n + len - 7, ".h5.tmp") == 0);
        if (!ours) continue;
        char *p = td_fs_join_alloc(dir, n);
        if (unlink(p) != 0)
            st = td_error_set(err, TD_ERR_IO, "%s: cannot remove an old shard: %s", p,
                              strerror(errno));
        else
            (*n_removed)++;
        free(p);
    }
    td_fs_list_free(names, n_names);
    return st;
}

typedef struct {
    tdp_progress *progress;
} read_progress_ctx;

static void on_corpus_progress(void *ctx, const tdp_corpus *c)
{
    read_progress_ctx *r = ctx;
    tdp_progress_say(r->progress, 0, "read %.1f MB, %lld lines, %lld documents, %lld tokens",
                     (double)c->n_bytes / 1e6, (long long)c->n_lines,
                     (long long)tdp_corpus_n_docs(c), (long long)c->tokens.n);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* ---- writing one split ------------------------------------------------------------ */

typedef struct {
    const tdp_instance_set *set;
    const int64_t *perm;     /* (set->n) shuffled order */
    int64_t n_shards;
    const char *dir;
    const tdp_vocab *vocab;
    const tdp_instance_options *inst;
    const tdp_shard_attrs *attrs;
    tdp_progress *progress;
    pthread_mutex_t mu;      /* next_shard, the HDF5 library, progress, statuses */
    int64_t next_shard, n_written;
    td_status *status;       /* (n_shards) */
    td_error *errors;        /* (n_shards) */
} write_ctx;

static void *write_main(void *arg)
{
    write_ctx *w = arg;
    const int64_t N = w->set->n;
    const int32_t **recs = NULL;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        int64_t s = w->next_shard++;
        pthread_mutex_unlock(&w->mu);
        if (s >= w->n_shards) break;
        int64_t r0 = s * N / w->n_shards, r1 = (s + 1) * N / w->n_shards;
        recs = tdp_xrealloc(recs, (size_t)(r1 - r0) * sizeof(*recs));
        for (int64_t k = r0; k < r1; k++) recs[k - r0] = w->set->rec[w->perm[k]];
        tdp_shard_arrays a;
        tdp_shard_arrays_init(&a, r1 - r0, w->inst->seq_len, w->inst->max_pred,
                              w->vocab->n_tokens);
        tdp_shard_arrays_fill(&a, recs, w->vocab->pad_id);
        char name[32];
        snprintf(name, sizeof(name), "shard_%05lld.h5", (long long)s);
        char *path = td_fs_join_alloc(w->dir, name);
        pthread_mutex_lock(&w->mu);
        w->status[s] = tdp_shard_write(path, &a, w->attrs, &w->errors[s]);
        w->n_written++;
        tdp_progress_say(w->progress, 0, "wrote %lld of %lld shards in %s",
                         (long long)w->n_written, (long long)w->n_shards, w->dir);
        pthread_mutex_unlock(&w->mu);
        free(path);
        tdp_shard_arrays_free(&a);
    }
    free(recs);
    return NULL;
}

static td_status write_split(const tdp_instance_set *set, int64_t n_shards, const char *dir,
                             const tdp_vocab *vocab, const tdp_instance_options *inst,
                             const tdp_shard_attrs *attrs, uint64_t split_id, int n_jobs,
                             tdp_progress *progress, td_error *err)
{
    const int64_t N = set->n;
    /* random.shuffle(instances), from its own stream */
    int64_t *perm = td_xmalloc((size_t)(N > 0 ? N : 1) * sizeof(int64_t));
    for (int64_t i = 0; i < N; i++) perm[i] = i;
    tdp_rng rng;
    tdp_rng_init(&rng, inst->seed, split_id, 0, TDP_SITE_SHUFFLE);
    for (int64_t i = N - 1; i > 0; i--) {
        int64_t j = tdp_rng_randint(&rng, 0, i);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    write_ctx w = {
        .set = set, .perm = perm, .n_shards = n_shards, .dir = dir, .vocab = vocab,
        .inst = inst, .attrs = attrs, .progress = progress,
    };
    w.status = td_xcalloc((size_t)n_shards, sizeof(td_status));
    w.errors = td_xcalloc((size_t)n_shards, sizeof(td_error));
    pthread_mutex_init(&w.mu, NULL);
    int n_threads = n_jobs < n_shards ? n_jobs : (int)n_shards;
    if (n_threads <= 1) {
        write_main(&w);
    } else {
        pthread_t *th = td_xmalloc((size_t)n_threads * sizeof(pthread_t));
        for (int i = 0; i < n_threads; i++)
            if (pthread_create(&th[i], NULL, write_main, &w) != 0)
                td_assert_fail(__FILE__, __LINE__, "pthread_create failed");
        for (int i = 0; i < n_threads; i++) pthread_join(th[i], NULL);
        free(th);
    }
    pthread_mutex_destroy(&w.mu);
    td_status st = TD_OK;
    for (int64_t s = 0; s < n_shards; s++)
        if (w.status[s] != TD_OK) {
            st = w.status[s];
            if (err) *err = w.errors[s];
            break;
        }
    free(w.status);
    free(w.errors);
    free(perm);
    return st;
}

/* ---- the whole run ------------------------------------------------------------------ */

td_status tdp_shards_run(const tdp_shards_options *o, const char *const *inputs,
                         int64_t n_inputs, tdp_shards_summary *sum, td_error *err)
{
    memset(sum, 0, sizeof(*sum));
    double t0 = tdp_now();
    td_status st = tdp_shards_check_options(o, err);
    if (st != TD_OK) return st;
    tdp_progress progress;
    tdp_progress_init(&progress, o->quiet);

    tdp_vocab vocab;
    st = tdp_vocab_load(&vocab, o->vocab_path, err);
    if (st != TD_OK) return st;
    tdp_inputs in;
    st = tdp_inputs_expand(&in, inputs, n_inputs, 0, err);
    if (st != TD_OK) {
        tdp_vocab_free(&vocab);
        return st;
    }
    sum->n_files = in.n;

    char *train_dir = td_fs_join_alloc(o->out_dir, "train");
    char *eval_dir = td_fs_join_alloc(o->out_dir, "eval");
    int64_t n_removed = 0;
    tdp_corpus corpus;
    memset(&corpus, 0, sizeof(corpus));
    int64_t *docs = NULL;
    char *sources = NULL;
    tdp_instance_set set;
    memset(&set, 0, sizeof(set));

    st = td_fs_mkdir_p(train_dir, NULL, NULL, err);
    if (st == TD_OK && o->eval_fraction > 0) st = td_fs_mkdir_p(eval_dir, NULL, NULL, err);
    if (st == TD_OK) st = remove_old_shards(train_dir, &n_removed, err);
    if (st == TD_OK) st = remove_old_shards(eval_dir, &n_removed, err);
    if (st != TD_OK) goto done;
    if (n_removed > 0)
        tdp_progress_say(&progress, 1, "removed %lld shard files of an earlier run from %s",
                         (long long)n_removed, o->out_dir);

    read_progress_ctx rp = {&progress};
    st = tdp_corpus_read(&corpus, &in, &vocab, o->lower_case, o->doc_per_file, o->n_jobs,
                         on_corpus_progress, &rp, err);
    if (st != TD_OK) goto done;
    sum->t_read_s = tdp_now() - t0;
    sum->n_lines = corpus.n_lines;
    sum->n_bytes = corpus.n_bytes;
    sum->n_docs = tdp_corpus_n_docs(&corpus);
    sum->n_tokens = corpus.tokens.n;
    sum->n_unk = corpus.n_unk;
    tdp_progress_say(&progress, 1, "read %.1f MB: %lld documents, %lld tokens in %.1f s",
                     (double)corpus.n_bytes / 1e6, (long long)sum->n_docs,
                     (long long)sum->n_tokens, sum->t_read_s);

    /* Hold out whole documents: the first round(f * D) of a seeded
     * permutation (at least one, and at least one left for training). */
    const int64_t D = sum->n_docs;
    docs = td_xmalloc((size_t)D * sizeof(int64_t));
    for (int64_t d = 0; d < D; d++) docs[d] = d;
    int64_t n_eval = 0;
    if (o->eval_fraction > 0) {
        if (D < 2) {
            st = td_error_set(err, TD_ERR_ARG, "--eval-fraction %g: the corpus has %lld "
                              "document(s); expected at least 2 to hold one out (documents are "
                              "separated by blank lines and by file ends)", o->eval_fraction,
                              (long long)D);
            goto done;
        }
        tdp_rng rng;
        tdp_rng_init(&rng, o->inst.seed, 0, 0, TDP_SITE_DOC_ORDER);
        for (int64_t i = D - 1; i > 0; i--) {
            int64_t j = tdp_rng_randint(&rng, 0, i);
            int64_t t = docs[i];
            docs[i] = docs[j];
            docs[j] = t;
        }
        n_eval = (int64_t)llround(o->eval_fraction * (double)D);
        if (n_eval < 1) n_eval = 1;
        if (n_eval > D - 1) n_eval = D - 1;
        qsort(docs, (size_t)n_eval, sizeof(int64_t), cmp_i64);
        qsort(docs + n_eval, (size_t)(D - n_eval), sizeof(int64_t), cmp_i64);
    }
    sum->n_eval_docs = n_eval;
    sum->n_train_docs = D - n_eval;

    char hash_hex[TD_HASH_HEX_LEN];
    td_hash_hex(hash_hex, vocab.hash);
    sources = tdp_inputs_join(&in);
    tdp_shard_attrs attrs = {
        .vocab_hash = hash_hex,
        .masking = o->inst.masking == TDP_MASKING_STATIC ? "static" : "none",
        .source_files = sources,
        .split = "train",
        .seed = (int64_t)o->inst.seed,
        .dupe_factor = o->inst.dupe_factor,
        .whole_word = o->inst.whole_word,
        .lower_case = o->lower_case,
    };

    for (int split = 0; split < 2; split++) {
        int is_eval = split == 1;
        if (is_eval && n_eval == 0) break;
        tdp_instance_options inst = o->inst;
        if (is_eval) inst.dupe_factor = 1; /* repeats would only re-mask the same text */
        const int64_t *split_docs = is_eval ? docs : docs + n_eval;
        int64_t n_split_docs = is_eval ? n_eval : D - n_eval;
        double tb = tdp_now();
        tdp_progress_say(&progress, 1, "building %s sequences from %lld documents (dupe factor "
                         "%lld)", is_eval ? "eval" : "train", (long long)n_split_docs,
                         (long long)inst.dupe_factor);
        tdp_instance_set_build(&set, &corpus, split_docs, n_split_docs, &inst, &vocab, o->n_jobs);
        sum->t_build_s += tdp_now() - tb;
        int64_t n_shards = is_eval ? 0 : o->n_shards;
        if (n_shards == 0) n_shards = (set.n + TDP_AUTO_SHARD_SEQS - 1) / TDP_AUTO_SHARD_SEQS;
        if (n_shards > set.n) {
            tdp_progress_say(&progress, 1, "only %lld %s sequences: writing %lld shards instead "
                             "of %lld", (long long)set.n, is_eval ? "eval" : "train",
                             (long long)set.n, (long long)n_shards);
            n_shards = set.n;
        }
        double tw = tdp_now();
        attrs.split = is_eval ? "eval" : "train";
        st = write_split(&set, n_shards, is_eval ? eval_dir : train_dir, &vocab, &inst, &attrs,
                         (uint64_t)split, o->n_jobs, &progress, err);
        sum->t_write_s += tdp_now() - tw;
        if (is_eval) {
            sum->n_eval_seqs = set.n;
            sum->n_eval_shards = n_shards;
        } else {
            sum->n_train_seqs = set.n;
            sum->n_train_shards = n_shards;
        }
        tdp_instance_set_free(&set);
        if (st != TD_OK) goto done;
    }
    sum->t_total_s = tdp_now() - t0;

done:
    tdp_instance_set_free(&set);
    free(sources);
    free(docs);
    tdp_corpus_free(&corpus);
    free(train_dir);
    free(eval_dir);
    tdp_inputs_free(&in);
    tdp_vocab_free(&vocab);
    return st;
}
