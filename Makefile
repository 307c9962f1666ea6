# aifw: `make run` starts the proxy with policies/default.yaml; `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test bench bench-workers install warm system-deps bench-deps clean lock

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,speed]'
	touch $(STAMP)

# What a fresh clone would otherwise pay on every `aifw` run or start, as the image pays it at
# build time. Bytecode: an editable install gets none from pip, and with PYTHONDONTWRITEBYTECODE
# set (as on this machine) every run recompiled ~120 modules, ~0.3-0.8 s; a stale .pyc is
# never used (Python compares the source's mtime and size). Compiled rules: `policy check
# --prepare` fills the cache (AIFW_CACHE_DIR, proxy/precompiled.py), keyed by the rule bytes and a
# digest of the code, so an edit misses and recompiles. Without provider keys it only warns, and
# a failure leaves a cold cache, never a failed install.
warm:
	$(PY) -m compileall -q proxy >/dev/null || echo "note: proxy/ not byte-compiled"
	$(PY) -m proxy policy check --prepare policies/*.yaml >/dev/null 2>&1 \
	  || echo "note: 'aifw policy check --prepare policies/*.yaml' failed; rules compile on first use"

# Redone whenever a module, rule file, policy or model changed since (a pull, an edit): with
# PYTHONDONTWRITEBYTECODE nothing else refreshes the bytecode, and a changed rule or detection
# module misses the compiled-rule cache until something fills it again.
WARM := $(VENV)/.warm
WARM_INPUTS := $(shell find proxy rules policies -name '*.py' -o -name '*.yaml' -o -name '*.npz')
$(WARM): $(STAMP) $(WARM_INPUTS)
	$(MAKE) --no-print-directory warm
	touch $(WARM)

install: $(WARM)

# The SBOM tool in an environment of its own, installed from its lock as the image's sbom stage
# does: in .venv its dependencies (jsonschema's format checkers) would slow every import of
# jsonschema, 'aifw policy check' included, by ~0.9 s.
SBOM_VENV := .venv-sbom
SBOM_STAMP := $(SBOM_VENV)/.installed
$(SBOM_STAMP): requirements-sbom.lock
	$(PYTHON) -m venv $(SBOM_VENV)
	$(SBOM_VENV)/bin/python -m pip install --quiet --require-hashes --no-deps -r requirements-sbom.lock
	touch $(SBOM_STAMP)

# Debian packages the test suite drives for real (a private redis-server; chromium for the
# audit report). Installed only when missing; needs root or sudo.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# Debian packages `make bench` drives besides Python (not `make test`): wrk, a C load generator,
# and nginx as a fake provider, both costing a few µs of CPU per request, so bench.workers can
# show what a second worker adds on a 2-core machine. Installed only when missing. (Where systemd
# runs, Debian also starts its own nginx on port 80: `systemctl disable --now nginx`.)
bench-deps:
	@missing=""; \
	command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx-light"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

run: $(WARM)
	$(PY) -m proxy serve --policy policies/default.yaml

test: $(WARM) $(SBOM_STAMP) system-deps
	$(PY) -m pytest -q

bench: $(WARM) bench-deps
	$(PY) -m bench.run
	$(PY) -m bench.workers

# only the one-worker against two-workers comparison (docs/bench.md "Several workers")
bench-workers: $(WARM) bench-deps
	$(PY) -m bench.workers

# The image's lock files (Dockerfile: pip --require-hashes). For the image's interpreter and
# platform, whatever this machine runs: the runtime dependencies, the [speed] extra and the
# build backend in requirements.lock; the SBOM tool in requirements-sbom.lock.
LOCK_TARGET := --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--custom-compile-command "make lock" --quiet
lock: $(STAMP)
	$(PY) -m pip install --quiet -e '.[lock]'
	printf 'setuptools>=68\nwheel\n' | $(VENV)/bin/uv pip compile pyproject.toml - --extra speed \
	  $(LOCK_TARGET) -o requirements.lock
	echo 'cyclonedx-bom==7.5.0' | $(VENV)/bin/uv pip compile - $(LOCK_TARGET) -o requirements-sbom.lock

clean:
	rm -rf $(VENV) $(SBOM_VENV) build *.egg-info .pytest_cache
