# The two commands a newcomer needs: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest processes (pytest-xdist): one per core; each runs its own worlds and real servers.
JOBS ?= 2

.PHONY: run test lint typecheck unit browser bench demo screenshot clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# WEB=1: also the web view of the chat (its URL is printed at start).
run: $(STAMP)
	$(BIN)/cpn-bot sandbox $(if $(WEB),--web) $(if $(CONTROL),--control $(CONTROL))

demo: $(STAMP)
	$(BIN)/cpn-bot demo $(if $(CONTROL),--control $(CONTROL))

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q -n $(JOBS)

# The web view's browser tests drive Debian's chromium through chromium-driver (an emoji font makes
# their screenshots readable): installed where missing, as root or through sudo; else they skip.
BROWSER_PACKAGES := chromium chromium-driver fonts-noto-color-emoji
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"; \
	else echo "chromium and chromium-driver are missing (no root, no sudo): the browser tests will skip"; exit 0; fi; \
	$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES) \
	|| echo "apt-get could not install $(BROWSER_PACKAGES): the browser tests will skip"

test: lint typecheck browser unit

bench: $(STAMP)
	for f in bench/bench_*.py; do $(BIN)/python $$f || exit 1; done

# The README's picture (docs/web-view.png): the web view beside the terminal chat, one project created.
screenshot: $(STAMP) browser
	$(BIN)/python tools/readme_screenshot.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
