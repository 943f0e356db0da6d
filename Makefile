# tokdrop front door: deps, build, test, demo, bench, install.
# Site settings live in Makefile.inc.

# make's built-in CC=cc would win over Makefile.inc's `CC ?= gcc`: drop it,
# so that Makefile.inc decides unless CC comes from the command line or the
# environment.
ifeq ($(origin CC),default)
undefine CC
endif
include Makefile.inc

CMAKE_FLAGS = -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCMAKE_C_COMPILER=$(CC) \
	-DTD_MARCH=$(MARCH) -DTD_WERROR=$(if $(filter 1,$(WERROR)),ON,OFF) \
	-DTD_SANITIZE=$(if $(filter 1,$(SANITIZE)),ON,OFF) \
	-DTD_DEFAULT_THREADS=$(DEFAULT_THREADS) \
	-DTD_OPENBLAS_CORETYPE_POLICY=$(OPENBLAS_CORETYPE_POLICY) \
	-DCMAKE_INSTALL_PREFIX=$(PREFIX) \
	$(if $(MPI_HOME),-DMPI_HOME=$(MPI_HOME)) $(if $(HDF5_ROOT),-DHDF5_ROOT=$(HDF5_ROOT)) \
	$(if $(DNNL_ROOT),-DDNNL_ROOT=$(DNNL_ROOT))

.PHONY: all deps configure build test fuzz demo bench bench-net bench-schedules soak leakcheck install clean

all: build

deps:
	@cluster/deps.sh

CONFIGURE = cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS)

configure:
	$(CONFIGURE)

# Configures first when the build tree has no build system yet: a new tree,
# or one whose configure failed (that leaves CMakeCache.txt and no Makefile).
build:
	[ -f $(BUILD_DIR)/Makefile ] || [ -f $(BUILD_DIR)/build.ninja ] || $(CONFIGURE)
	cmake --build $(BUILD_DIR) -j $$(nproc)

test: deps
	$(MAKE) configure build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $$(nproc) --timeout 600

# The libFuzzer harnesses of tests/fuzz (clang, ASan, UBSan; build tree
# build-fuzz), each run for FUZZ_SECONDS; not part of make test, which
# replays their seeds and regression inputs.
FUZZ_SECONDS ?= 60
fuzz:
	@cluster/deps.sh fuzz
	FUZZ_SECONDS=$(FUZZ_SECONDS) MARCH=$(MARCH) tests/fuzz/run.sh

demo: deps
	$(MAKE) configure build
	cluster/demo.sh $(BUILD_DIR)

bench: deps
	$(MAKE) configure build
	bench/run.sh $(BUILD_DIR)

# The network part of make bench alone (bench/net.sh), written to its own file.
bench-net: deps
	$(MAKE) configure build
	bench/net.sh $(BUILD_DIR) 1 bench/results/net-$$(date -u +%Y%m%dT%H%M%SZ).json

# Token-drop schedules against the baseline on time to held-out loss (about
# 35 minutes at the default 360 steps; SCHEDULE_ARGS="--steps N --runs ...").
bench-schedules: deps
	$(MAKE) configure build
	bench/schedules.py $(BUILD_DIR) $(SCHEDULE_ARGS)

# Soak test, not part of `make test` (about 30 minutes at 10,000 steps):
# bert-tiny on 2 ranks stopped and killed every few hundred steps must end
# bit-identical to an uninterrupted run, with flat resident memory
# (tests/soak/soak.py; SOAK_ARGS="--rss-bound-mib 4 --work DIR --out FILE").
SOAK_STEPS ?= 10000
SOAK_SEED ?= 1
soak: deps
	$(MAKE) configure build
	tests/soak/soak.py $(BUILD_DIR) --steps $(SOAK_STEPS) --seed $(SOAK_SEED) $(SOAK_ARGS)

# Every program briefly under LeakSanitizer, in its own sanitizer build
# (tests/leakcheck.sh; suppressions with their reasons in tests/lsan.supp).
LEAKCHECK_BUILD_DIR ?= build-asan
leakcheck: deps
	$(MAKE) SANITIZE=1 BUILD_DIR=$(LEAKCHECK_BUILD_DIR) configure build
	tests/leakcheck.sh $(LEAKCHECK_BUILD_DIR)

# docs/config.md, the configuration reference, from the key table in src/config.c.
.PHONY: docs
docs: build
	$(BUILD_DIR)/td-config-doc > docs/config.md

# The programs into PREFIX/bin; configs, cluster scripts, README and docs
# into PREFIX/share/tokdrop. PREFIX applies even when the build tree was
# configured with another one.
install: build
	cmake --install $(BUILD_DIR) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD_DIR)
