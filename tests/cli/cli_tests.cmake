# End-to-end tests of the programs (shell scripts under tests/cli).
add_test(NAME cli_train_runs
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/train_runs.sh $<TARGET_FILE:tokdrop-bin>
                 ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/tmp/cli_train_runs)
set_tests_properties(cli_train_runs PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")
add_test(NAME cli_rank_invariance
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/rank_invariance.sh $<TARGET_FILE:tokdrop-bin>
                 ${MPIEXEC_EXECUTABLE} ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/tmp/cli_rank_invariance)
set_tests_properties(cli_rank_invariance PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")
add_test(NAME cli_resume
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/resume.sh $<TARGET_FILE:tokdrop-bin>
                 ${MPIEXEC_EXECUTABLE} ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/tmp/cli_resume)
set_tests_properties(cli_resume PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")
# Stop signals with no launcher and under mpirun: exit 75, a checkpoint at
# the stopped step, and a resumed run bit-identical to an uninterrupted one.
add_test(NAME cli_stop_signal
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/stop_signal.sh $<TARGET_FILE:tokdrop-bin>
                 ${MPIEXEC_EXECUTABLE} ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/tmp/cli_stop_signal)
set_tests_properties(cli_stop_signal PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")
add_test(NAME cli_mpi_failures
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/mpi_failures.sh $<TARGET_FILE:tokdrop-bin>
                 ${MPIEXEC_EXECUTABLE} ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/tmp/cli_mpi_failures)
set_tests_properties(cli_mpi_failures PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")

# cluster/plot.sh on made-up run directories: a PNG from valid runs, clear
# errors for a missing run directory, an empty or malformed metrics.jsonl.
add_test(NAME cli_plot
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli/plot_test.sh ${CMAKE_SOURCE_DIR}
                 ${CMAKE_CURRENT_BINARY_DIR}/tmp/cli_plot)

# tokdrop export / import: the HF layout both ways, checked against the
# PyTorch reference.
add_test(NAME cli_export_import
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/export_import.sh $<TARGET_FILE:tokdrop-bin>
                 ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/tmp/cli_export_import)
set_tests_properties(cli_export_import PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")

# train.precision: fp32, bf16, auto; emulated and missing bf16 (through
# ONEDNN_MAX_CPU_ISA); bad values.
add_test(NAME cli_precision
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/precision.sh $<TARGET_FILE:tokdrop-bin>
                 ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/tmp/cli_precision)
set_tests_properties(cli_precision PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")

# bf16 against fp32 on the Python documentation: held-out MLM loss within 1%.
add_test(NAME cli_bf16_docs
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/bf16_docs.sh $<TARGET_FILE:tokdrop-bin>
                 $<TARGET_FILE:tokdrop-prep> ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/tmp/cli_bf16_docs)
set_tests_properties(cli_bf16_docs PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")

# A corpus larger than data.memory_mb: flat resident memory through more
# than an epoch of 24 shards, and a bit-identical resume in the middle of a
# file.
add_test(NAME cli_streaming
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/streaming.sh $<TARGET_FILE:tokdrop-bin>
                 ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/tmp/cli_streaming)
set_tests_properties(cli_streaming PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")

# Every rank's first log line: host, bound cores, threads (mpirun -n 2,
# bound and not bound).
add_test(NAME cli_placement
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/placement.sh $<TARGET_FILE:tokdrop-bin>
                 ${MPIEXEC_EXECUTABLE} ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/tmp/cli_placement)
set_tests_properties(cli_placement PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")

# cluster/tokdrop.sbatch on a private one-node Slurm (cluster/slurm-local.sh):
# SIGUSR1 as before a time limit, requeue, resume, bit-identical end. Skipped
# (77) only where Slurm cannot be started: not root. Its own time-outs end it
# (and stop its daemons) well before ctest's.
add_test(NAME cli_slurm
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/slurm.sh $<TARGET_FILE:tokdrop-bin>
                 ${MPIEXEC_EXECUTABLE} ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/tmp/cli_slurm)
set_tests_properties(cli_slurm PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1"
                     SKIP_RETURN_CODE 77 TIMEOUT 900)
