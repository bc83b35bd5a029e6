# The front door. `make test` and `make demo` work on a fresh machine: they install what is missing
# (stack/install.sh), build, start the local stack and run.
#
#   make            build build/mongo2mysql (installs missing packages first)
#   make test       install, build, start the stack, run every test (C++ unit + integration, pytest)
#   make unit       C++ unit tests only (no servers needed)
#   make demo       install, build, start the stack, run the demo
#   make up | down | status   the local stack: MariaDB, Kafka, MongoDB stand-in (and Spark's readiness)
#   make bench      benchmarks under bench/, one table (BENCH_ARGS=--short for a quick check)
#   make clean      remove build/ (the stack's data stays in .stack/; `make down` then rm -rf .stack)

SHELL := /bin/bash
BUILD ?= build
JOBS ?= $(shell nproc)
PYTHON := $(or $(M2M_VENV),$(CURDIR)/.stack/venv)/bin/python
# pytest selection, e.g. make test PYTEST_ARGS='-k spark'
PYTEST_ARGS ?=

.PHONY: all install build test unit ctest pytest demo up down status bench clean

all: build

install:
	@bash stack/install.sh

build: install
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
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

clean:
	rm -rf $(BUILD)

# The Spark engine in local mode, e.g. make spark SPARK_ARGS='--topics rs0.db.c --mysql-database db --until-caught-up'
SPARK_ARGS ?= --help
.PHONY: spark
spark: up
	@M2M_MYSQL_PASSWORD=$${M2M_MYSQL_PASSWORD:-mongo2mysql} PYTHONPATH=$(CURDIR)/spark $(PYTHON) -m m2m_spark.job $(SPARK_ARGS)
