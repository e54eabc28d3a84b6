# The two commands a new user needs: `make up` and `make test`. Each installs what it
# needs into .venv first; nothing else is required but Python 3.11+.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVICES := image-uploaded compress-fits make-rgb-fits record-image lookup-field get-fits-header data-explorer plate-solve
REQUIREMENTS := $(wildcard $(addsuffix /requirements.txt,$(SERVICES)))
STAMP := $(VENV)/.installed

.PHONY: install up demo test bench clean

install: $(STAMP)

$(STAMP): shared/pyproject.toml requirements-dev.txt $(REQUIREMENTS)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e shared -r requirements-dev.txt $(addprefix -r ,$(REQUIREMENTS))
	touch $@

up: install
	$(BIN)/panoptes-network up

demo: install
	$(BIN)/panoptes-network demo

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache
