/* tokdrop-prep: the command line (SPEC section 5). Parses the options of
 * each subcommand (cli_args.h, shared with tokdrop), calls the library, and turns errors into one line on
 * stderr with a non-zero exit status (1: the work failed, 2: bad usage). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"
#include "corpus.h"
#include "input.h"
#include "shard_writer.h"
#include "shards.h"
#include "tokdrop/base/error.h"
#include "tokdrop/base/report.h"
#include "unicode.h"
#include "vocab_learn.h"
#include "wordpiece.h"

enum { EXIT_FAIL = 1, EXIT_USAGE = TD_CLI_EXIT_USAGE };

static const char *MAIN_HELP =
    "usage: tokdrop-prep COMMAND [OPTIONS] [INPUT...]\n"
    "\n"
    "Turns UTF-8 text (one sentence or paragraph per line, a blank line between\n"
    "documents; each input file also ends a document) into tokdrop training shards.\n"
    "\n"
    "commands:\n"
    "  vocab     learn a WordPiece vocabulary from the text\n"
    "  tokenize  print the WordPiece tokens of each input line\n"
    "  shards    write NSP/MLM training shards (HDF5, NVIDIA BERT layout)\n"
    "\n"
    "INPUT is a file (.gz is decompressed), a directory (all files in it,\n"
    "recursively, in sorted order) or - for stdin.\n"
    "Run tokdrop-prep COMMAND --help for the options of a command.\n";

static const char *VOCAB_HELP =
    "usage: tokdrop-prep vocab --size N --out vocab.txt [--cased] [--jobs N] INPUT...\n"
    "\n"
    "Learns a WordPiece vocabulary of N tokens: [PAD] [UNK] [CLS] [SEP] [MASK], every\n"
    "character seen and its ## form, then the most frequent adjacent pieces merged\n"
    "(BPE-style) until N tokens or no pair occurs twice.\n"
    "\n"
    "  --size N     vocabulary size, special tokens included (>= 16)\n"
    "  --out FILE   the vocabulary file to write (one token a line)\n"
    "  --cased      keep case and accents (default: lower-case, strip accents)\n"
    "  --jobs N     threads for reading and counting (default: all cores)\n"
    "  --quiet      no progress or summary on stderr\n";

static const char *TOKENIZE_HELP =
    "usage: tokdrop-prep tokenize --vocab vocab.txt [--cased] [--jobs N] [INPUT...]\n"
    "\n"
    "Prints, for each input line, its WordPiece tokens joined by one space (an empty\n"
    "line for an empty input line): BERT's BasicTokenizer and WordPiece as in\n"
    "google-research/bert. Reads stdin when no INPUT is given.\n"
    "\n"
    "  --vocab FILE  BERT vocab.txt (must hold [PAD] [UNK] [CLS] [SEP] [MASK])\n"
    "  --cased       keep case and accents (default: lower-case, strip accents)\n"
    "  --jobs N      threads (default: all cores); the output does not depend on it\n";

static const char *SHARDS_HELP =
    "usage: tokdrop-prep shards --vocab vocab.txt --out DIR [OPTIONS] INPUT...\n"
    "\n"
    "Writes DIR/train/shard_NNNNN.h5 (and DIR/eval/ with --eval-fraction) in the\n"
    "NVIDIA DeepLearningExamples BERT layout plus token_counts: sequence pairs for\n"
    "next-sentence prediction and masked-LM predictions as google-research/bert's\n"
    "create_pretraining_data.py makes them. Shard files of an earlier run in DIR\n"
    "are removed. The output depends on the seed, not on --jobs.\n"
    "\n"
    "  --vocab FILE           BERT vocab.txt\n"
    "  --out DIR              output directory\n"
    "  --shards N             train shard files (default: one per 65536 sequences)\n"
    "  --seq-len T            sequence length (default 128)\n"
    "  --max-pred P           masked-LM predictions per sequence (default 20)\n"
    "  --masking MODE         static (default) or none (the trainer masks)\n"
    "  --whole-word           mask whole words (a word's ## pieces together)\n"
    "  --dupe-factor K        passes over the documents, each masked anew (default 5)\n"
    "  --short-seq-prob X     probability of a shorter target length (default 0.1)\n"
    "  --masked-lm-prob X     fraction of tokens to predict (default 0.15)\n"
    "  --eval-fraction X      documents held out for DIR/eval (default 0; eval uses\n"
    "                         dupe factor 1)\n"
    "  --seed S               random seed (default 12345)\n"
    "  --doc-per-file         each input file is one document (blank lines do not\n"
    "                         end documents)\n"
    "  --cased                keep case and accents\n"
    "  --jobs N               threads (default: all cores)\n"
    "  --quiet                no progress or summary on stderr\n";

/* ---- option values ------------------------------------------------------------------ */

static int parse_i64(const char *cmd, const char *name, const char *s, int64_t lo, int64_t hi,
                     int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "tokdrop-prep %s: --%s '%s': expected an integer in %lld..%lld\n", cmd,
                name, s, (long long)lo, (long long)hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_f64(const char *cmd, const char *name, const char *s, double lo, double hi,
                     double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
        fprintf(stderr, "tokdrop-prep %s: --%s '%s': expected a number in [%g, %g]\n", cmd, name,
                s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int fail(const td_error *err)
{
    fprintf(stderr, "tokdrop-prep: error: %s\n", err->msg);
    return EXIT_FAIL;
}

static int get_jobs(const char *cmd, const char *v, int *jobs)
{
    *jobs = tdp_nproc();
    if (!v) return 0;
    int64_t j;
    if (parse_i64(cmd, "jobs", v, 1, 4096, &j) != 0) return -1;
    *jobs = (int)j;
    return 0;
}

/* ---- subcommands -------------------------------------------------------------------- */

static int cmd_vocab(int argc, char **argv)
{
    td_cli_opt opts[] = {TD_CLI_VALUE("size"), TD_CLI_VALUE("out"), TD_CLI_FLAG("cased"), TD_CLI_VALUE("jobs"),
                         TD_CLI_FLAG("quiet")};
    td_cli_cmd cmd = {.prog = "tokdrop-prep vocab", .help = VOCAB_HELP, .opts = opts,
                      .n_opts = TD_CLI_N_OPTS(opts)};
    td_cli_result parsed = td_cli_parse(&cmd, argc - 1, argv + 1);
    if (parsed != TD_CLI_OK) return td_cli_exit_status(parsed);
    const char **pos = cmd.pos;
    int n_pos = cmd.n_pos;
    tdp_vocab_learn_options o = {.min_pair_count = 2};
    const char *size = td_cli_value(&cmd, "size"), *out = td_cli_value(&cmd, "out");
    if (!size || !out || n_pos == 0) {
        td_cli_free(&cmd);
        return td_cli_usage_error(&cmd, "%s is required", !size ? "--size N" : !out ? "--out FILE" : "an INPUT");
    }
    if (parse_i64("vocab", "size", size, 16, INT32_MAX, &o.vocab_size) != 0 ||
        get_jobs("vocab", td_cli_value(&cmd, "jobs"), &o.n_jobs) != 0) {
        td_cli_free(&cmd);
        return EXIT_USAGE;
    }
    o.lower_case = !td_cli_value(&cmd, "cased");
    o.quiet = td_cli_value(&cmd, "quiet") != NULL;
    tdp_vocab_learn_summary sum;
    td_error err = {0};
    td_status st = tdp_vocab_learn(out, pos, n_pos, &o, &sum, &err);
    td_cli_free(&cmd);
    if (st != TD_OK) return fail(&err);
    if (!o.quiet) {
        fprintf(stderr, "tokdrop-prep: %.1f MB, %lld words (%lld distinct) read in %.2f s\n",
                (double)sum.n_bytes / 1e6, (long long)sum.n_words, (long long)sum.n_unique_words,
                sum.t_count_s);
        fprintf(stderr, "tokdrop-prep: wrote %s: %lld tokens (5 special, %lld characters and "
                "their ## forms, %lld merges) in %.2f s\n", out, (long long)sum.n_tokens,
                (long long)sum.n_chars, (long long)sum.n_merges, sum.t_merge_s);
        if (sum.n_chars_dropped)
            fprintf(stderr, "tokdrop-prep: note: %lld rare characters did not fit and will be "
                    "[UNK]\n", (long long)sum.n_chars_dropped);
        if (sum.n_tokens < o.vocab_size)
            fprintf(stderr, "tokdrop-prep: note: stopped at %lld tokens: no pair of pieces "
                    "occurs twice more\n", (long long)sum.n_tokens);
    }
    return 0;
}

static int cmd_tokenize(int argc, char **argv)
{
    td_cli_opt opts[] = {TD_CLI_VALUE("vocab"), TD_CLI_FLAG("cased"), TD_CLI_VALUE("jobs")};
    td_cli_cmd cmd = {.prog = "tokdrop-prep tokenize", .help = TOKENIZE_HELP, .opts = opts,
                      .n_opts = TD_CLI_N_OPTS(opts)};
    td_cli_result parsed = td_cli_parse(&cmd, argc - 1, argv + 1);
    if (parsed != TD_CLI_OK) return td_cli_exit_status(parsed);
    const char **pos = cmd.pos;
    int n_pos = cmd.n_pos;
    const char *vocab_path = td_cli_value(&cmd, "vocab");
    int jobs;
    if (!vocab_path) {
        td_cli_free(&cmd);
        return td_cli_usage_error(&cmd, "--vocab FILE is required");
    }
    if (get_jobs("tokenize", td_cli_value(&cmd, "jobs"), &jobs) != 0) {
        td_cli_free(&cmd);
        return EXIT_USAGE;
    }
    td_error err = {0};
    tdp_vocab v;
    td_status st = tdp_vocab_load(&v, vocab_path, &err);
    if (st != TD_OK) {
        td_cli_free(&cmd);
        return fail(&err);
    }
    bool lower_case = !td_cli_value(&cmd, "cased");
    tdp_inputs in;
    st = tdp_inputs_expand(&in, pos, n_pos, 1, &err);
    td_cli_free(&cmd);
    if (st == TD_OK) {
        st = tdp_tokenize_to_file(stdout, &in, &v, lower_case, jobs, NULL, &err);
        tdp_inputs_free(&in);
    }
    tdp_vocab_free(&v);
    if (st == TD_OK && fflush(stdout) != 0)
        st = td_error_set(&err, TD_ERR_IO, "cannot write the tokens to stdout: %s",
                          strerror(errno));
    return st == TD_OK ? 0 : fail(&err);
}

static int cmd_shards(int argc, char **argv)
{
    td_cli_opt opts[] = {
        TD_CLI_VALUE("vocab"),          TD_CLI_VALUE("out"),           TD_CLI_VALUE("shards"),
        TD_CLI_VALUE("seq-len"),        TD_CLI_VALUE("max-pred"),      TD_CLI_VALUE("masking"),
        TD_CLI_FLAG("whole-word"),      TD_CLI_VALUE("dupe-factor"),   TD_CLI_VALUE("short-seq-prob"),
        TD_CLI_VALUE("masked-lm-prob"), TD_CLI_VALUE("eval-fraction"), TD_CLI_VALUE("seed"),
        TD_CLI_FLAG("cased"),           TD_CLI_VALUE("jobs"),          TD_CLI_FLAG("quiet"),
        TD_CLI_FLAG("doc-per-file"),
    };
    td_cli_cmd cmd = {.prog = "tokdrop-prep shards", .help = SHARDS_HELP, .opts = opts,
                      .n_opts = TD_CLI_N_OPTS(opts)};
    td_cli_result parsed = td_cli_parse(&cmd, argc - 1, argv + 1);
    if (parsed != TD_CLI_OK) return td_cli_exit_status(parsed);
    const char **pos = cmd.pos;
    int n_pos = cmd.n_pos;
    tdp_shards_options o = {
        .inst = {.seq_len = 128, .max_pred = 20, .dupe_factor = 5, .short_seq_prob = 0.1,
                 .masked_lm_prob = 0.15, .masking = TDP_MASKING_STATIC, .seed = 12345},
    };
    o.vocab_path = td_cli_value(&cmd, "vocab");
    o.out_dir = td_cli_value(&cmd, "out");
    if (!o.vocab_path || !o.out_dir || n_pos == 0) {
        td_cli_free(&cmd);
        return td_cli_usage_error(&cmd, "%s is required",
                                  !o.vocab_path ? "--vocab FILE" : !o.out_dir ? "--out DIR" : "an INPUT");
    }
    const char *v;
    int bad = 0;
    int64_t seed = 12345;
    if ((v = td_cli_value(&cmd, "shards")))
        bad |= parse_i64("shards", "shards", v, 1, 1000000, &o.n_shards);
    if ((v = td_cli_value(&cmd, "seq-len")))
        bad |= parse_i64("shards", "seq-len", v, 5, 65536, &o.inst.seq_len);
    if ((v = td_cli_value(&cmd, "max-pred")))
        bad |= parse_i64("shards", "max-pred", v, 1, 65536, &o.inst.max_pred);
    if ((v = td_cli_value(&cmd, "dupe-factor")))
        bad |= parse_i64("shards", "dupe-factor", v, 1, 1000, &o.inst.dupe_factor);
    if ((v = td_cli_value(&cmd, "short-seq-prob")))
        bad |= parse_f64("shards", "short-seq-prob", v, 0.0, 1.0, &o.inst.short_seq_prob);
    if ((v = td_cli_value(&cmd, "masked-lm-prob")))
        bad |= parse_f64("shards", "masked-lm-prob", v, 1e-9, 1.0, &o.inst.masked_lm_prob);
    if ((v = td_cli_value(&cmd, "eval-fraction")))
        bad |= parse_f64("shards", "eval-fraction", v, 0.0, 0.999999, &o.eval_fraction);
    if ((v = td_cli_value(&cmd, "seed"))) bad |= parse_i64("shards", "seed", v, 0, INT64_MAX, &seed);
    if ((v = td_cli_value(&cmd, "masking"))) {
        if (strcmp(v, "static") == 0) {
            o.inst.masking = TDP_MASKING_STATIC;
        } else if (strcmp(v, "none") == 0) {
            o.inst.masking = TDP_MASKING_NONE;
        } else {
            fprintf(stderr, "tokdrop-prep shards: --masking '%s': expected static or none\n", v);
            bad = 1;
        }
    }
    bad |= get_jobs("shards", td_cli_value(&cmd, "jobs"), &o.n_jobs);
    if (bad) {
        td_cli_free(&cmd);
        return EXIT_USAGE;
    }
    o.inst.seed = (uint64_t)seed;
    o.inst.whole_word = td_cli_value(&cmd, "whole-word") != NULL;
    o.lower_case = !td_cli_value(&cmd, "cased");
    o.doc_per_file = td_cli_value(&cmd, "doc-per-file") != NULL;
    o.quiet = td_cli_value(&cmd, "quiet") != NULL;

    td_error err = {0};
    if (tdp_shards_check_options(&o, &err) != TD_OK) {
        td_cli_free(&cmd);
        fprintf(stderr, "tokdrop-prep shards: %s\n", err.msg);
        return EXIT_USAGE;
    }
    tdp_shards_summary s;
    td_status st = tdp_shards_run(&o, pos, n_pos, &s, &err);
    td_cli_free(&cmd);
    if (st != TD_OK) return fail(&err);
    if (!o.quiet) {
        double mb = (double)s.n_bytes / 1e6;
        fprintf(stderr, "tokdrop-prep: %lld files, %.1f MB, %lld lines -> %lld documents "
                "(%lld train, %lld eval), %lld tokens, [UNK] rate %.4f%%\n",
                (long long)s.n_files, mb, (long long)s.n_lines, (long long)s.n_docs,
                (long long)s.n_train_docs, (long long)s.n_eval_docs, (long long)s.n_tokens,
                s.n_tokens ? 100.0 * (double)s.n_unk / (double)s.n_tokens : 0.0);
        fprintf(stderr, "tokdrop-prep: %lld train sequences in %lld shards, %lld eval sequences "
                "in %lld shards under %s\n", (long long)s.n_train_seqs,
                (long long)s.n_train_shards, (long long)s.n_eval_seqs,
                (long long)s.n_eval_shards, o.out_dir);
        fprintf(stderr, "tokdrop-prep: %.2f s (tokenize %.2f s = %.1f MB/s with %d thread(s), "
                "sequences %.2f s, shards %.2f s)\n", s.t_total_s, s.t_read_s,
                s.t_read_s > 0 ? mb / s.t_read_s : 0.0, o.n_jobs, s.t_build_s, s.t_write_s);
    }
    return 0;
}

int main(int argc, char **argv)
{
    td_report_set_sink(td_report_stderr, "tokdrop-prep"); /* a failed TD_ASSERT says where */
    if (argc < 2) {
        fputs(MAIN_HELP, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(MAIN_HELP, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("tokdrop-prep (tokdrop) shard format %d, Unicode %s\n", TD_SHARD_FORMAT_VERSION,
               tdp_unicode_version());
        return 0;
    }
    if (strcmp(cmd, "vocab") == 0) return cmd_vocab(argc, argv);
    if (strcmp(cmd, "tokenize") == 0) return cmd_tokenize(argc, argv);
    if (strcmp(cmd, "shards") == 0) return cmd_shards(argc, argv);
    fprintf(stderr, "tokdrop-prep: unknown command '%s'; expected vocab, tokenize or shards "
            "(see tokdrop-prep --help)\n", cmd);
    return EXIT_USAGE;
}
