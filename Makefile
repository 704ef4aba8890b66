# pg_safeguard: two commands do all the set-up (see README).
#   make run    set up, build, install, start a throwaway cluster, load the demo, run the tour
#   make test   set up, then every test layer; non-zero exit on any failure
#   make bench  benchmarks against plain PostgreSQL, printed as ratios
#   make stop   stop the throwaway cluster
# Settings (PostgreSQL major, OS user, port, pgrx version) are in pgrx.toml.

SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help setup install run stop test unit-test regress demo bench

help:
	@sed -n '2,6p' Makefile

setup:
	scripts/setup.sh

install: setup
	scripts/install.sh

run: install
	scripts/cluster.sh start
	scripts/demo.sh
	@source scripts/common.sh && echo && echo "Connect with:  $$CONNECT_HINT" && echo "Stop with:     make stop"

stop:
	scripts/cluster.sh stop

# Unit, property and #[pg_test] tests first, and the encryption test vector against OpenSSL; then
# the release build is installed and, with every statement logged, the golden SQL tests, the
# connection-pool client test, the demo, a pg_dump/pg_restore round trip of the demo database,
# ALTER EXTENSION UPDATE from every kept release (catalog, data, dump/restore),
# the audit concurrency/crash test, the maintain_count concurrency test, maintain_count on a
# logical replication subscriber and the shared_preload_libraries set-up run in the throwaway
# cluster; last, its log is searched for key bytes.
test: setup
	scripts/pgrx-test.sh
	python3 tests/crypto/vector.py
	scripts/install.sh
	scripts/cluster.sh start
	scripts/key-leak-test.sh start
	scripts/regress.sh
	scripts/client-test.sh
	scripts/demo.sh >/dev/null
	scripts/dump-test.sh
	scripts/upgrade-test.sh
	scripts/audit-concurrency-test.sh
	scripts/rules-concurrency-test.sh
	scripts/replication-test.sh
	scripts/preload-test.sh
	scripts/key-leak-test.sh check
	@echo "make test: all layers passed"

bench: install
	scripts/cluster.sh start
	benches/run.sh
