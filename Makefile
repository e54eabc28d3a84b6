# The two commands a new user needs: `make up` and `make test`. Each installs what it
# needs into .venv first; nothing else is required but Python 3.11+.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVICES := image-uploaded compress-fits make-rgb-fits record-image lookup-field get-fits-header data-explorer plate-solve process-observation
REQUIREMENTS := $(wildcard $(addsuffix /requirements.txt,$(SERVICES)))
STAMP := $(VENV)/.installed

LOCK := requirements.lock
LATEST := .venv-latest
PYPI := https://pypi.org/simple

.PHONY: install up demo test bench clean lock lock-upgrade test-latest

install: $(STAMP)

# Exactly the locked versions, each checked against its hash; then the shared library,
# editable, built by the locked setuptools (pip cannot check hashes of an editable install).
# --no-compile: Python compiles a module when it is first imported, not all of them up front.
$(STAMP): $(LOCK) shared/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-compile --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e shared
	$(BIN)/python -m pip check
	touch $@

# The one lock of the repository, for every Python from 3.11 (universal), one version of
# each package on all of them, from PyPI alone whatever indexes pip or uv are set up with here.
# `make lock` keeps the pins it has and adds what the requirements files newly name;
# `make lock-upgrade` takes the newest releases the requirements allow (one package:
# `make lock LOCK_FLAGS='--upgrade-package NAME'`).
LOCK_COMPILE = env -u UV_INDEX_URL -u UV_EXTRA_INDEX_URL -u UV_INDEX -u UV_DEFAULT_INDEX -u UV_FIND_LINKS \
	-u UV_CONSTRAINT -u UV_OVERRIDE $(BIN)/uv pip compile --quiet --no-config --default-index $(PYPI) \
	--universal --python-version 3.11 --fork-strategy fewest --generate-hashes --emit-index-annotation \
	--custom-compile-command 'make lock' --output-file $(LOCK) \
	shared/pyproject.toml --all-extras requirements-dev.txt $(REQUIREMENTS)

lock: install
	$(LOCK_COMPILE) $(LOCK_FLAGS)

lock-upgrade: install
	$(LOCK_COMPILE) --upgrade

# The newest releases the requirements allow, in a venv of their own: the unit and
# contract tests see an upstream change before a lock refresh takes it in.
test-latest:
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager \
		-e 'shared[lookup]' -r requirements-dev.txt $(addprefix -r ,$(REQUIREMENTS))
	$(LATEST)/bin/python -m pytest -p no:cacheprovider tests/unit tests/contract

up: install
	$(BIN)/panoptes-network up

demo: install
	$(BIN)/panoptes-network demo

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) $(LATEST) .pytest_cache
