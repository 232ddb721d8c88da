# Two commands for a new machine: `make run` (the app, sample entries indexed) and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast sync package lint bench eval clean

# Reinstall only when a requirements file changes.
$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed: set PYTHON=/path/to/python3.11"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

run: $(STAMP)  ## start the app on the embedded index, with the sample entries indexed
	$(BIN)/python -m kb sync
	$(BIN)/streamlit run app.py

test: $(STAMP)  ## the whole test suite, real-model, server and browser tests included
	$(BIN)/python -m pytest -n auto --dist loadfile

test-fast: $(STAMP)  ## the library and the app with a fake embedder: no model, browser, server or shared data
	$(BIN)/python -m pytest -n auto tests/unit tests/app -m "not model and not data"

sync: $(STAMP)
	$(BIN)/python -m kb sync

package: $(STAMP)  ## build the wheel, install it into a new virtual environment and run `lighthouse` and its web app there
	rm -rf dist .venv-package
	$(BIN)/python -m pip wheel --no-deps --quiet -w dist .
	$(PYTHON) -m venv .venv-package
	.venv-package/bin/pip install --quiet --constraint requirements.txt dist/lighthouse_kb-*.whl
	.venv-package/bin/lighthouse --help
	.venv-package/bin/lighthouse --entries entries check
	.venv-package/bin/python tests/check_packaged_app.py entries

lint: $(STAMP)  ## ruff (lint and format) on all the code, mypy on the library and the benchmarks
	$(BIN)/ruff check kb bench tests app.py app_pages setup.py
	$(BIN)/ruff format --check kb bench tests app.py app_pages setup.py
	$(BIN)/mypy

bench: $(STAMP)  ## performance figures on NASA's 2,101 lessons (needs ../shared/data)
	$(BIN)/python -m bench register

clean:
	rm -rf .lighthouse-index
