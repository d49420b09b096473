# Every target installs what it needs: `make test` and `make demo` work from a fresh
# clone on a fresh Debian 12 machine (as root, or as a user with sudo).
SHELL := /bin/bash
.DEFAULT_GOAL := help

REELHOUSE := .venv/bin/reelhouse
PYTEST := .venv/bin/pytest

# `make up STACK=full` / `make demo STACK=full`: Kafka and Cassandra behind the same interfaces.
ifdef STACK
export REELHOUSE_STACK := $(STACK)
endif
# `make airflow EXECUTOR=celery`: CeleryExecutor with two workers (queues default and gpu).
ifeq ($(EXECUTOR),celery)
export REELHOUSE_AIRFLOW_EXECUTOR := CeleryExecutor
else ifeq ($(EXECUTOR),local)
export REELHOUSE_AIRFLOW_EXECUTOR := LocalExecutor
endif

.PHONY: help deps venv npm-deps up airflow down status demo test test-lite test-airflow test-fast bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

deps: ## install what is missing: apt packages, uv, .venv, npm packages of the browser tests
	@scripts/install-deps.sh system python node

venv: ## build .venv from uv.lock (uv sync --frozen)
	@scripts/install-deps.sh python

npm-deps: ## npm ci in web/ (hls.js) and tests/e2e/js (tus-js-client, playwright-core) when a lock changed
	@scripts/install-deps.sh node

$(REELHOUSE):
	@scripts/install-deps.sh python

up: $(REELHOUSE) ## start the local services (Redis, the API, nginx, the worker, then PostgreSQL and Airflow) under .reelhouse/
	@$(REELHOUSE) up

airflow: deps ## start Airflow alone (with Redis and PostgreSQL); EXECUTOR=celery for Celery workers on queues default and gpu
	@$(REELHOUSE) up redis postgres airflow
	@$(REELHOUSE) airflow info

down: ## stop them
	@if [ -x $(REELHOUSE) ]; then $(REELHOUSE) down; fi

status: $(REELHOUSE) ## what runs, where, which version, how much memory
	@$(REELHOUSE) status

demo: deps ## install, start, and run the demo (deps includes the venv)
	@$(REELHOUSE) up
	@$(REELHOUSE) demo

test: deps ## every tier: unit, contract, integration, e2e (deps includes the venv and npm packages)
	$(PYTEST) -q tests

test-lite: deps ## every tier except the full-stack engines (Kafka, Cassandra, Spark with Kafka)
	$(PYTEST) -q -m "not full" tests

test-airflow: deps ## the Airflow tier alone (DagBag, dag.test, SIGKILL retry, UI, Celery queues)
	$(PYTEST) -q -m airflow tests

test-fast: venv ## unit tests only (fakes; no services)
	$(PYTEST) -q tests/unit

bench: deps ## upload, VOD and engine benchmarks; each prints ratios against a baseline measured in the same run
	.venv/bin/python -m bench.upload_throughput
	.venv/bin/python -m bench.chunk_ack_latency
	.venv/bin/python -m bench.uploads_vs_tusd
	.venv/bin/python -m bench.tus_parallel_uploads
	.venv/bin/python -m bench.transcode_overhead
	.venv/bin/python -m bench.ladder_vs_separate
	.venv/bin/python -m bench.first_frame
	.venv/bin/python -m bench.engines_lite_vs_full
	.venv/bin/python -m bench.transcode_batch_overhead

clean: down ## stop the services and delete .reelhouse/ (their data, logs and PID files)
	rm -rf .reelhouse
