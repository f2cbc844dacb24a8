# Two commands on a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench-replies bench-ingest bench-digests bench-search screenshots clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/tidings serve

# Both cores: the end-to-end tests mostly wait on their servers. A test file's tests stay
# on one worker (--dist loadfile), so a module's stack is started once.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest -n auto --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench-replies: $(STAMP)
	$(BIN)/python bench/replies.py

bench-ingest: $(STAMP)
	$(BIN)/python bench/ingest.py

bench-digests: $(STAMP)
	$(BIN)/python bench/digests.py

bench-search: $(STAMP)
	$(BIN)/python bench/search.py

# docs/img/digest-*.png: a sample digest in headless Chromium (Debian's `chromium`).
screenshots: $(STAMP)
	$(BIN)/python docs/screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
