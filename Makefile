# Two set-up commands on a fresh machine: `make demo` (the main job) and `make test`;
# on a clone with no data kit beside it, both download data once (see README, Data).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo data test test-slow bench lint clean gpu-bundle

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[dev,jax]"
	touch $(STAMP)

# The demo fetches the data its tasks read when missing (network); without it, it runs the
# tasks it can and lists the skipped ones in reports/index.html.
demo: $(STAMP)
	$(BIN)/kts demo

# Every dataset the tests read, into the data root when missing (a no-op with the kit).
data: $(STAMP)
	$(BIN)/kts data fetch --all

# Every test under TensorFlow, then the Keras-facing ones (marker `backend`: models, tasks,
# training, export, end-to-end smoke runs) again under JAX.
test: $(STAMP) data
	KERAS_BACKEND=tensorflow $(BIN)/python -m pytest -q -m "not slow"
	KERAS_BACKEND=jax $(BIN)/python -m pytest -q -m "backend and not slow"

test-slow: $(STAMP)
	KERAS_BACKEND=tensorflow $(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/classification.py
	$(BIN)/python benchmarks/detection.py
	$(BIN)/python benchmarks/seq2seq.py

# For the offline H200 machine (no TensorFlow, no network): wheels into .whl/ and the data
# the GPU runs read into .gpu-data/ (both git-ignored); see docs/benchmarks.md.
KTS_DATA ?= ../shared/data
gpu-bundle:
	../shared/tools/offline-wheels pycocotools sentencepiece
	mkdir -p .gpu-data && cp -r $(KTS_DATA)/bccd $(KTS_DATA)/multi30k .gpu-data/

lint: $(STAMP)
	$(BIN)/ruff check shared pipelines tasks tests benchmarks

clean:
	rm -rf runs reports .pytest_cache
