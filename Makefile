# pg_safeguard: two commands do all the set-up (see README).
#   make run      set up, build, install, start a throwaway cluster, load the demo, run the tour
#   make test     set up, then every test layer on every supported PostgreSQL major
#   make test-citus  the Citus layer alone (a coordinator and two workers; Citus installed by hand)
#   make bench    benchmarks against plain PostgreSQL, printed as ratios
#   make stop     stop the throwaway cluster
#   make install  build and install into PostgreSQL (PG_CONFIG=/path/to/pg_config: a server of your own)
#   make package  a Debian package per supported major, in target/packages
# PG=N picks a supported major for run, test, bench, stop and package (pgrx.toml lists them).

SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help setup install run stop test test-citus bench package

help:
	@sed -n '2,9p' Makefile

setup:
	scripts/setup.sh

install: setup
	scripts/install.sh

run: install
	scripts/cluster.sh start
	scripts/demo.sh
	@source scripts/common.sh && echo && echo "Connect with:  $$CONNECT_HINT" && echo "Stop with:     make stop$${PG:+ PG=$$PG}"

stop:
	scripts/cluster.sh stop

# Per major (scripts/test-major.sh): unit, property and #[pg_test] tests; then the release build
# installed and, with every statement logged, the golden SQL tests, the verified-context (token)
# tests, the demo, a pg_dump/pg_restore
# round trip (also into a new cluster), ALTER EXTENSION UPDATE from every kept release, the Citus
# layer where Citus is installed, and a search of the server log for key bytes. On the oldest and the newest major also the connection-pool client test, the Python
# package's tests and example application (also through PgBouncer), the node-postgres smoke test,
# the audit and maintain_count concurrency tests, maintain_count on a logical replication
# subscriber and the shared_preload_libraries set-up. Then pg_upgrade from the oldest
# to the newest major, and the Debian package of the Debian-packaged major installed, used and
# removed.
# (scripts/test-all.sh; PG=N: every layer on that major alone.)
test: setup
	scripts/test-all.sh
	@echo "make test: all layers passed"

test-citus: install
	scripts/citus-test.sh

bench: install
	scripts/cluster.sh start
	benches/run.sh

package: setup
	scripts/package.sh
