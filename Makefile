# aifw: `make run` starts the proxy with policies/default.yaml; `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test bench install system-deps clean lock

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,speed]'
	touch $(STAMP)

install: $(STAMP)

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

run: $(STAMP)
	$(PY) -m proxy serve --policy policies/default.yaml

test: $(STAMP) $(SBOM_STAMP) system-deps
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench.run

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
