# Script tests: the float64 PyTorch reference of the first training step
# (tests/reference/). Each ref_<case> builds the tiny fixture, runs
# `tokdrop train CONFIG --dump` and compares the dump with the reference;
# the pair tests require two dumps to agree (keep == T is the full model bit
# for bit; 2 micro-batches of 4 equal one batch of 8). ref_selftest checks
# the reference itself and needs no tokdrop binary.
set(TD_PYTHON /usr/bin/python3 CACHE FILEPATH
    "Python with torch, numpy and h5py, for the reference tests")
set(TD_REF_DIR ${CMAKE_SOURCE_DIR}/tests/reference)
set(TD_REF_ENV "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1;MKL_NUM_THREADS=1;"
               "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;PYTHONDONTWRITEBYTECODE=1")
string(REPLACE ";;" ";" TD_REF_ENV "${TD_REF_ENV}")
if(MPIEXEC_EXECUTABLE)
  set(TD_REF_MPIRUN ${MPIEXEC_EXECUTABLE})
else()
  set(TD_REF_MPIRUN mpirun)
endif()

add_test(NAME ref_selftest
         COMMAND ${TD_PYTHON} ${TD_REF_DIR}/run_case.py --self-test
                 --workdir ${CMAKE_CURRENT_BINARY_DIR}/tmp/ref_selftest)
set_tests_properties(ref_selftest PROPERTIES ENVIRONMENT "${TD_REF_ENV}" TIMEOUT 120)

# a: full model, LAMB; b: dropping (loss importance); c: keep == T;
# d: AdamW, first_layer L-2, gelu_tanh; e: frequency importance, first_layer 0;
# f: 2 micro-batches of 4; g: strong clipping; h: 2 MPI ranks.
foreach(case a b c d e f g h)
  add_test(NAME ref_${case}
           COMMAND ${TD_PYTHON} ${TD_REF_DIR}/run_case.py --tokdrop ${CMAKE_BINARY_DIR}/tokdrop
                   --mpirun ${TD_REF_MPIRUN} --case ${case}
                   --workdir ${CMAKE_CURRENT_BINARY_DIR}/tmp/ref_${case})
  set_tests_properties(ref_${case} PROPERTIES ENVIRONMENT "${TD_REF_ENV}" TIMEOUT 300)
endforeach()
set_tests_properties(ref_h PROPERTIES PROCESSORS 2)

# keep == T must be bit-identical to the full model (SPEC 2).
add_test(NAME ref_pair_keepT_equals_full
         COMMAND ${TD_PYTHON} ${TD_REF_DIR}/run_case.py --tokdrop ${CMAKE_BINARY_DIR}/tokdrop
                 --pair a c --exact --workdir ${CMAKE_CURRENT_BINARY_DIR}/tmp/ref_pair_a_c)
# Accumulation changes only the float32 summation order: losses and the
# importance table to 1e-6, tensors to 1e-5 (a float32 emulation of the same
# split already differs by 1.2e-6 on the small query-bias gradients).
add_test(NAME ref_pair_accumulation
         COMMAND ${TD_PYTHON} ${TD_REF_DIR}/run_case.py --tokdrop ${CMAKE_BINARY_DIR}/tokdrop
                 --pair a f --rtol 1e-6 --tensor-rtol 1e-5
                 --workdir ${CMAKE_CURRENT_BINARY_DIR}/tmp/ref_pair_a_f)
set_tests_properties(ref_pair_keepT_equals_full ref_pair_accumulation PROPERTIES
                     ENVIRONMENT "${TD_REF_ENV}" TIMEOUT 300)
