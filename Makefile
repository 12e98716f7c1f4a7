# One Makefile; CI calls `make test` through .ci/run.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip --disable-pip-version-check
LOCK   := requirements/constraints.txt
STAMP  := $(VENV)/.installed
APP_STAMP := $(VENV)/.installed-app
# llama.cpp for AVX2 CPUs, not -march=native: a native build on a CPU with AMX emits AMX
# tile instructions, which fault (SIGSEGV in ldtilecfg) in VMs that don't enable AMX state,
# as these machines are. Built once into this folder, then installed from it.
LLAMA_VERSION := 0.3.36
LLAMA_CMAKE   := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
LLAMA_WHEELS  := $(HOME)/.cache/ragapp/wheels/llama-avx2
DEMO_Q ?= What was the cooperative's total income for 2025?

.PHONY: install install-app system-deps demo serve test test-unit test-integration lint bench lock clean \
        compose-deps compose-images compose-test compose-clean

# Debian packages for OCR (scanned PDFs, images), pandoc formats (odt, rtf, epub) and the
# browser the web UI tests drive (chromium), and strace (the gpt4all no-network test).
# Optional for users: without them those files are skipped with the reason. CI installs them.
SYSTEM_DEPS := tesseract-ocr tesseract-ocr-eng poppler-utils pandoc chromium strace

# what the app needs (demo, serve); $(STAMP) adds the dev extras on top (tests, lint)
$(APP_STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "ragapp needs Python 3.11 (set PYTHON=python3.11)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24"
	# the CPU build of torch first, so nothing can pull a CUDA one
	$(PIP) install -q -c $(LOCK) torch==2.13.0
	# llama-cpp-python builds from source the first time (about 5 minutes on 2 cores)
	ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1 || \
	  CMAKE_ARGS="$(LLAMA_CMAKE)" $(PIP) wheel -q --no-deps --no-cache-dir \
	    llama-cpp-python==$(LLAMA_VERSION) -w $(LLAMA_WHEELS)
	$(PIP) install -q -c $(LOCK) --find-links $(LLAMA_WHEELS) -e .
	# unstructured's PDF partitioner imports unstructured-inference; its own dependencies
	# (timm, torchvision, accelerate) would pull a CUDA torch, and we don't use its models
	$(PIP) install -q --no-deps -c $(LOCK) unstructured-inference==1.6.14
	touch $(APP_STAMP)

$(STAMP): $(APP_STAMP)
	$(PIP) install -q -c $(LOCK) --find-links $(LLAMA_WHEELS) -e ".[dev]"
	touch $(STAMP)

install-app: $(APP_STAMP)  ## create .venv with what the app needs, no dev extras (idempotent)

install: $(STAMP)  ## create .venv with everything, dev extras included (idempotent)

system-deps:  ## the Debian packages above (needs root)
	@missing=$$(for p in $(SYSTEM_DEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

demo: install-app  ## ingest sample_docs/ and answer a question, fully offline
	$(BIN)/ragapp --collection sample-docs ingest sample_docs/
	$(BIN)/ragapp --collection sample-docs ask "$(DEMO_Q)"

serve: install-app  ## the web UI and HTTP API over sample_docs/ on http://127.0.0.1:8000
	$(BIN)/ragapp --collection sample-docs ingest sample_docs/
	$(BIN)/ragapp --collection sample-docs serve

test: lint test-unit test-integration  ## lint, then the unit tier, then the integration tier

test-unit: install  ## fakes and an in-memory store: no model, no Chroma, no network (< 60 s)
	$(BIN)/python -m pytest tests/unit

test-integration: install  ## the real bundled models, real Chroma, real servers on loopback, a browser
	$(BIN)/python -m pytest tests/integration

lint: install  ## ruff (lint + format), deptry (every import declared), mypy
	$(BIN)/ruff check ragapp ingest tests bench tools
	$(BIN)/ruff format --check ragapp ingest tests bench tools
	$(BIN)/deptry ragapp ingest
	$(BIN)/mypy

bench: install  ## ingest / retrieval / generation figures (see README)
	$(BIN)/python bench/pipeline.py

lock:  ## re-pin the whole dependency tree from the current .venv
	$(PIP) freeze | grep -viE '^(-e |ragapp|pip==|setuptools==)' | sed -e 's/^torch==2.13.0+cpu/torch==2.13.0/' \
	  -e 's/^llama_cpp_python @ .*/llama_cpp_python==$(LLAMA_VERSION)/' > $(LOCK).new
	{ sed -n '1,2p' $(LOCK); cat $(LOCK).new; } > $(LOCK).tmp && mv $(LOCK).tmp $(LOCK) && rm $(LOCK).new

# podman and what it needs on these machines (no Docker engine): runc (crun fails here),
# debootstrap (the base image, where no registry is reachable). See docker/podman/.
COMPOSE_DEPS := podman runc debootstrap
export CONTAINERS_CONF ?= $(CURDIR)/docker/podman/containers.conf

compose-deps:  ## podman, runc, debootstrap (needs root) and the debian:bookworm-slim base image
	@missing=$$(for p in $(COMPOSE_DEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi
	docker/podman/base-image.sh

compose-images: compose-deps  ## build ragapp's image (and the chromadb/chroma stand-in) with podman
	docker/podman/build-images.sh

compose-test: install compose-deps  ## build the images, bring the compose stack up, test it, tear it down
	$(BIN)/python -m pytest tests/integration/test_compose.py

compose-clean:  ## remove the images compose-images built
	-podman rmi -f localhost/ragapp:latest docker.io/chromadb/chroma:1.5.9

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
