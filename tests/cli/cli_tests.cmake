# End-to-end tests of the programs (shell scripts under tests/cli).
# td_cli_test(NAME SCRIPT ARGS...) runs tests/cli/SCRIPT ARGS... SOURCE_DIR
# WORKDIR, WORKDIR being tmp/NAME in the build tree, with one thread per
# rank (the tests use at most 2 ranks x 1 thread).
function(td_cli_test name script)
  add_test(NAME ${name}
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/${script} ${ARGN}
                   ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/tmp/${name})
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")
endfunction()
td_cli_test(cli_train_runs train_runs.sh $<TARGET_FILE:tokdrop-bin>)
td_cli_test(cli_rank_invariance rank_invariance.sh $<TARGET_FILE:tokdrop-bin> ${MPIEXEC_EXECUTABLE})
td_cli_test(cli_resume resume.sh $<TARGET_FILE:tokdrop-bin> ${MPIEXEC_EXECUTABLE})
# Stop signals with no launcher and under mpirun: exit 75, a checkpoint at
# the stopped step, and a resumed run bit-identical to an uninterrupted one.
td_cli_test(cli_stop_signal stop_signal.sh $<TARGET_FILE:tokdrop-bin> ${MPIEXEC_EXECUTABLE})
td_cli_test(cli_mpi_failures mpi_failures.sh $<TARGET_FILE:tokdrop-bin> ${MPIEXEC_EXECUTABLE})
# Non-finite steps: skipped and logged, train.max_bad_steps in a row stop the
# run, and the checkpoint before them is set aside.
td_cli_test(cli_divergence divergence.sh $<TARGET_FILE:tokdrop-bin> ${MPIEXEC_EXECUTABLE})
# A full disk under run.dir (a small tmpfs; root only, else skipped with 77):
# exit 74 on every rank, no crash, no temporary file, the newest checkpoint
# intact and resumed from once there is room.
td_cli_test(cli_disk_full disk_full.sh $<TARGET_FILE:tokdrop-bin> ${MPIEXEC_EXECUTABLE})
set_tests_properties(cli_disk_full PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)

# cluster/plot.sh on made-up run directories: a PNG from valid runs, clear
# errors for a missing run directory, an empty or malformed metrics.jsonl.
add_test(NAME cli_plot
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/plot_test.sh ${CMAKE_SOURCE_DIR}
                 ${CMAKE_CURRENT_BINARY_DIR}/tmp/cli_plot)

# tokdrop export / import: the HF layout both ways, checked against the
# PyTorch reference.
td_cli_test(cli_export_import export_import.sh $<TARGET_FILE:tokdrop-bin>)

# train.precision: fp32, bf16, auto; emulated and missing bf16 (through
# ONEDNN_MAX_CPU_ISA); bad values.
td_cli_test(cli_precision precision.sh $<TARGET_FILE:tokdrop-bin>)

# bf16 against fp32 on the Python documentation: held-out MLM loss within 1%.
td_cli_test(cli_bf16_docs bf16_docs.sh $<TARGET_FILE:tokdrop-bin> $<TARGET_FILE:tokdrop-prep>)

# A corpus larger than data.memory_mb: flat resident memory through more
# than an epoch of 24 shards, and a bit-identical resume in the middle of a
# file.
td_cli_test(cli_streaming streaming.sh $<TARGET_FILE:tokdrop-bin>)

# Every rank's first log line: host, bound cores, threads (mpirun -n 2,
# bound and not bound).
td_cli_test(cli_placement placement.sh $<TARGET_FILE:tokdrop-bin> ${MPIEXEC_EXECUTABLE})

# cluster/tokdrop.sbatch on a private one-node Slurm (cluster/slurm-local.sh):
# SIGUSR1 as before a time limit, requeue, resume, bit-identical end. Skipped
# (77) only where Slurm cannot be started: not root. Its own time-outs end it
# (and stop its daemons) well before ctest's.
td_cli_test(cli_slurm slurm.sh $<TARGET_FILE:tokdrop-bin> ${MPIEXEC_EXECUTABLE})
set_tests_properties(cli_slurm PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900)

# JSON outputs (metrics.jsonl, eval.jsonl, `tokdrop eval`, an export's
# config.json and safetensors header) with '"' and '\' in the paths.
td_cli_test(cli_json_paths json_paths.sh $<TARGET_FILE:tokdrop-bin>)

# The top-level Makefile: Makefile.inc's CC honoured, make recovers after a
# failed configure, make install PREFIX=... with configs, cluster scripts
# and docs under share/tokdrop.
td_cli_test(make_front_door make_front_door.sh ${CMAKE_BINARY_DIR})
set_tests_properties(make_front_door PROPERTIES TIMEOUT 300)

# Every subcommand of both programs: --help and -h exit 0 with the usage;
# bad options, missing files, arguments and keys give a non-zero status and
# stderr naming the cause; a config failing on one rank stops both ranks.
td_cli_test(cli_refusals cli_refusals.sh $<TARGET_FILE:tokdrop-bin> $<TARGET_FILE:tokdrop-prep>
            "${MPIEXEC_EXECUTABLE}")
set_tests_properties(cli_refusals PROPERTIES TIMEOUT 300)

# docs/config.md is what td-config-doc writes from the key table.
td_cli_test(config_doc config_doc.sh $<TARGET_FILE:td-config-doc>)

# The layering rules (README "Layout"): the base library and tokdrop-prep
# without MPI/BLAS, MPI only in dist.c, no prints or getenv in the library.
if(TARGET tokdrop-prep)
  td_cli_test(cli_layers layers.sh $<TARGET_FILE:tokdrop-prep> $<TARGET_FILE:tokdrop_base>)
endif()
