# Two commands matter: `make run` and `make test`. Everything else is what they are made of.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test install system-deps lint typecheck audit bench clean

run: install
	$(BIN)/lms serve

test: install system-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

install: $(STAMP)

# setuptools upgraded too: Python 3.11's venv seeds 65.5.0, which has published advisories
# (CVE-2022-40897, CVE-2024-6345, CVE-2025-47273), and make audit checks what is here.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

# System packages the tests need: they start their own throwaway redis-server and nginx (the
# streaming edge's, and the reference our byte ranges are checked against), and drive the
# system's Chromium for the pages. PostgreSQL comes from the pgserver wheel (or the system's).
system-deps:
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
	@command -v chromium >/dev/null || { \
	  echo "installing chromium"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { \
	  echo "installing nginx-light"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; }

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy over lms, actors, media and proto (pyproject's [tool.mypy]): 10-25 s cold, <1 s warm
# (.mypy_cache), so `make test` runs it too.
typecheck: install
	$(BIN)/mypy

# Known vulnerabilities (PyPI's advisories, through pip-audit) in exactly what the venv holds:
# every installed version, pip and setuptools included, but not this project (not on PyPI).
# --strict: a package that cannot be looked up (offline, or a mirror without PyPI's JSON API)
# fails the audit instead of passing unaudited.
AUDITED := $(VENV)/audited-requirements.txt
audit: install
	$(BIN)/python -m pip freeze --all --exclude-editable > $(AUDITED)
	$(BIN)/pip-audit --strict --no-deps --disable-pip --progress-spinner off -r $(AUDITED)

# The benchmarks' Python peers (pyproject's `bench` extra), on top of the test install.
BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $@

bench: install system-deps $(BENCH_STAMP)
	@command -v ffmpeg >/dev/null || { \
	  echo "installing ffmpeg (the transcode benchmark's baseline)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; }
	@command -v wrk >/dev/null || { \
	  echo "installing wrk (the streaming and dashboard benchmarks' load)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python -m tests.bench.bridge
	$(BIN)/python -m tests.bench.progress
	$(BIN)/python -m tests.bench.live
	$(BIN)/python -m tests.bench.transcode
	$(BIN)/python -m tests.bench.streaming
	$(BIN)/python -m tests.bench.dashboard
	$(BIN)/python -m tests.bench.edge
	$(BIN)/python -m tests.bench.soak

clean:
	rm -rf $(VENV) .lms .pytest_cache .ruff_cache .mypy_cache

# Browser libraries the node serves itself (so its pages work without internet access), each
# vendored from a pinned npm package into lms/static/vendor/<name>/ (see the README.md there).
# Bump a version here, run its `make vendor-...`, and commit the files it wrote.

# /docs: Swagger UI.
SWAGGER_UI_VERSION := 5.35.0
SWAGGER_UI_DIR := lms/static/vendor/swagger-ui
SWAGGER_UI_FILES := swagger-ui-bundle.js swagger-ui.css favicon-32x32.png \
	LICENSE NOTICE swagger-ui-bundle.js.LICENSE.txt package.json

# /watch: hls.js, its light build (no alternate audio, subtitles or DRM, which our videos lack).
HLS_JS_VERSION := 1.7.4
HLS_JS_DIR := lms/static/vendor/hls.js
HLS_JS_FILES := dist/hls.light.min.js LICENSE package.json

# /dashboard, /courses/{id}/analytics, /admin: uPlot's charts (canvas, no dependencies).
UPLOT_VERSION := 1.6.32
UPLOT_DIR := lms/static/vendor/uplot
UPLOT_FILES := dist/uPlot.iife.min.js dist/uPlot.min.css LICENSE package.json

# $(call vendor_npm,package,version,dir,files): the files (paths inside the package) into dir.
define vendor_npm
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  npm pack --silent --pack-destination "$$tmp" $(1)@$(2) >/dev/null && \
	  tar -xzf "$$tmp/$(1)-$(2).tgz" -C "$$tmp" && \
	  mkdir -p $(3) && \
	  cd "$$tmp/package" && cp $(4) "$(CURDIR)/$(3)/"
endef

.PHONY: vendor-swagger-ui vendor-hls vendor-uplot
vendor-swagger-ui:
	$(call vendor_npm,swagger-ui-dist,$(SWAGGER_UI_VERSION),$(SWAGGER_UI_DIR),$(SWAGGER_UI_FILES))

vendor-hls:
	$(call vendor_npm,hls.js,$(HLS_JS_VERSION),$(HLS_JS_DIR),$(HLS_JS_FILES))

vendor-uplot:
	$(call vendor_npm,uplot,$(UPLOT_VERSION),$(UPLOT_DIR),$(UPLOT_FILES))

# The common passwords lms/accounts/password_rules.py refuses: SecLists' top 100,000 (MIT), from
# a pinned commit, gzipped beside the module with the licence. Bump the commit, run this, and
# commit both files.
SECLISTS_COMMIT := 4f84b3c29b5f2192cc82ccdeaf655f0c5f0ab547
SECLISTS_RAW := https://raw.githubusercontent.com/danielmiessler/SecLists/$(SECLISTS_COMMIT)
COMMON_PASSWORDS := lms/accounts/common-passwords

.PHONY: vendor-passwords
vendor-passwords:
	curl -fsSL -o $(COMMON_PASSWORDS).txt.part \
	  "$(SECLISTS_RAW)/Passwords/Common-Credentials/10-million-password-list-top-100000.txt"
	curl -fsSL -o $(COMMON_PASSWORDS).LICENSE "$(SECLISTS_RAW)/LICENSE"
	gzip -9n < $(COMMON_PASSWORDS).txt.part > $(COMMON_PASSWORDS).txt.gz
	rm $(COMMON_PASSWORDS).txt.part
