# Two commands do everything on a fresh machine: `make demo` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTHON ?= python3

.PHONY: install demo test bench browser nginx redis clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Debian's Chromium and ChromeDriver for the browser tests (a test tool's own browser download fails here).
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -qq chromium chromium-driver >/dev/null || \
	    (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null); \
	  else echo "browser tests need Debian's chromium and chromium-driver: sudo apt-get install chromium chromium-driver"; exit 1; fi; \
	fi

# Debian's nginx for the proxy tests (tests/app/test_proxy_nginx.py runs deploy/nginx.conf with it).
nginx:
	@if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -qq nginx-light >/dev/null || \
	    (apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null); \
	  else echo "the proxy tests need Debian's nginx: sudo apt-get install nginx-light"; exit 1; fi; \
	fi

# The job tests talk to a real Redis on 127.0.0.1:6379; start one (keeping nothing on disk) if none answers.
redis:
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || \
	  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null || \
	  (echo "the job tests need Redis on 127.0.0.1:6379: apt-get install redis-server"; exit 1)

demo: install
	$(VENV)/bin/rnnvis demo

test: install browser nginx redis
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

# Benchmarks (not tests; figures in docs/performance.md). The dashboard and load ones need a built store (make demo).
bench: install
	$(PY) bench/bench_train.py
	$(PY) bench/bench_trace.py
	$(PY) bench/bench_cocluster.py
	$(PY) bench/bench_analysis.py
	$(PY) bench/bench_dashboard.py --store var/store --first-render
	$(PY) bench/bench_jobs.py
	$(PY) bench/bench_load.py --store var/store
	$(PY) bench/bench_sandbox.py --store var/store
	$(PY) bench/bench_patterns.py
	$(PY) bench/bench_projections.py --store var/store
	$(PY) bench/bench_hostile.py --store var/store

clean:
	rm -rf var/store
