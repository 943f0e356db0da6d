/* tokdrop: the command-line front door. Picks the subcommand, and first of
 * all makes sure OpenBLAS runs its fastest kernels on this CPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tokdrop/nn/blas.h"
#include "tokdrop/nn/gemm.h"
#include "tokdrop/base/report.h"

#ifndef TD_OPENBLAS_CORETYPE_POLICY
#define TD_OPENBLAS_CORETYPE_POLICY "auto"
#endif

static void usage(FILE *out)
{
    fputs("usage: tokdrop COMMAND [ARGS]\n"
          "\n"
          "commands:\n"
          "  train CONFIG.yaml [--set key.path=value ...] [--dump FILE]\n"
          "        train BERT as the config says (configs/ has examples); --dump runs one step\n"
          "        and writes loss, gradients and updated parameters to FILE; resumes by\n"
          "        itself from the newest checkpoint in run.dir; SIGUSR1 (also through\n"
          "        mpirun and srun) or SIGTERM (no launcher) checkpoint and exit with status 75\n"
          "  eval CONFIG.yaml --checkpoint FILE [--set key.path=value ...]\n"
          "        full-sequence MLM and NSP loss and accuracy on data.eval, as JSON\n"
          "  export CHECKPOINT OUTDIR [--vocab FILE]\n"
          "        model.safetensors, config.json and vocab.txt in Hugging Face layout\n"
          "  import HF_DIR CHECKPOINT\n"
          "        a Hugging Face BERT (config.json, model.safetensors, vocab.txt) as a\n"
          "        step-0 checkpoint; start a run from it with model.init: CHECKPOINT\n"
          "\n"
          "tokdrop COMMAND --help (or -h) prints a command's arguments and options;\n"
          "tokdrop --version the version and the kernels this CPU runs.\n"
          "\n"
          "Run under mpirun/srun for several ranks. Environment: OPENBLAS_CORETYPE\n"
          "overrides the BLAS kernel choice; ONEDNN_MAX_CPU_ISA limits the bf16 kernels\n"
          "oneDNN may use (e.g. AVX512_CORE: no bf16 instructions).\n",
          out);
}

int main(int argc, char **argv)
{
    /* OpenBLAS picks its kernels when loaded; an older OpenBLAS falls back
     * to AVX2 on recent Xeons, so restart with the AVX-512 ones (policy set
     * in Makefile.inc; a user's OPENBLAS_CORETYPE always wins). */
    if (strcmp(TD_OPENBLAS_CORETYPE_POLICY, "auto") == 0) td_cli_restart_for_fast_kernels(argv);
    /* the library's lines ("tokdrop: ...") go to stderr */
    td_report_set_sink(td_report_stderr, "tokdrop");
    if (argc < 2) {
        fputs("tokdrop: no command given\n", stderr);
        usage(stderr);
        return TD_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return TD_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        td_gemm_engine *bf16 = NULL;
        td_error err;
        bool has_bf16 = td_gemm_engine_create(&bf16, TD_PRECISION_BF16, &err) == TD_OK;
        printf("tokdrop 0.1.0 (BLAS kernels: %s; bf16: %s%s)\n", td_blas_corename(),
               !has_bf16 ? "unavailable, it needs AVX-512" : td_gemm_engine_kernels(bf16),
               has_bf16 && !td_gemm_native_bf16() ? ", emulated: slower than fp32" : "");
        td_gemm_engine_free(bf16);
        return TD_EXIT_OK;
    }
    if (strcmp(argv[1], "train") == 0) return td_cmd_train(argc - 1, argv + 1);
    if (strcmp(argv[1], "eval") == 0) return td_cmd_eval(argc - 1, argv + 1);
    if (strcmp(argv[1], "export") == 0) return td_cmd_export(argc - 1, argv + 1);
    if (strcmp(argv[1], "import") == 0) return td_cmd_import(argc - 1, argv + 1);
    fprintf(stderr, "tokdrop: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return TD_EXIT_USAGE;
}
