# Two set-up commands on a fresh machine: `make demo` (the main job) and `make test`;
# on a clone with no data kit beside it, both download data once (see README, Data).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo data test test-slow bench bench-quick bench-latency lint clean gpu-bundle

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

# Every task's benchmark (ours and its peer in the same script), each writing --json into
# $(BENCH_OUT), then the table at the top of docs/benchmarks.md regenerated from them.
# GLOVE_TOOL=GloVe/build adds Stanford's GloVe (built from its source) beside ours on nltk-glove.
# bench-quick: the same scripts at toy sizes (minutes on 2 CPU cores; the figures say little).
# predict_latency (cold start) reads the runs `make demo` writes: `make bench-latency`.
BENCH_OUT ?= reports/bench
bench: $(STAMP)
	mkdir -p $(BENCH_OUT)
	$(BIN)/python benchmarks/classification.py --json $(BENCH_OUT)/classification.json
	$(BIN)/python benchmarks/detection.py --json $(BENCH_OUT)/detection.json
	$(BIN)/python benchmarks/seq2seq.py --json $(BENCH_OUT)/seq2seq.json
	$(BIN)/python benchmarks/embeddings.py --preset nltk-sg --json $(BENCH_OUT)/embeddings.json
	$(BIN)/python benchmarks/embeddings.py --preset nltk-glove --no-peer $(if $(GLOVE_TOOL),--glove-tool $(GLOVE_TOOL)) --json $(BENCH_OUT)/embeddings_glove.json
	$(BIN)/python benchmarks/style.py --json $(BENCH_OUT)/style.json
	$(BIN)/python benchmarks/faces.py --json $(BENCH_OUT)/faces.json
	$(BIN)/python benchmarks/collect.py $(BENCH_OUT)/*.json --doc docs/benchmarks.md

bench-quick: $(STAMP)
	mkdir -p $(BENCH_OUT)/quick
	$(BIN)/python benchmarks/classification.py --images 256 --batch-size 64 --epochs 2 --json $(BENCH_OUT)/quick/classification.json
	$(BIN)/python benchmarks/detection.py --image-size 320 --images 8 --batch-size 4 --epochs 2 --json $(BENCH_OUT)/quick/detection.json
	$(BIN)/python benchmarks/seq2seq.py --size small --sentences 256 --batch-size 32 --epochs 2 --decode-sentences 16 --json $(BENCH_OUT)/quick/seq2seq.json
	$(BIN)/python benchmarks/embeddings.py --preset demo --epochs 1 --json $(BENCH_OUT)/quick/embeddings.json
	$(BIN)/python benchmarks/style.py --quick --json $(BENCH_OUT)/quick/style.json
	$(BIN)/python benchmarks/faces.py --images 128 --epochs 2 --json $(BENCH_OUT)/quick/faces.json
	$(BIN)/python benchmarks/collect.py $(BENCH_OUT)/quick/*.json --doc $(BENCH_OUT)/quick/benchmarks.md

bench-latency: $(STAMP)
	mkdir -p $(BENCH_OUT)
	$(BIN)/python benchmarks/predict_latency.py --json $(BENCH_OUT)/predict_latency.json
	$(BIN)/python benchmarks/collect.py $(BENCH_OUT)/*.json --doc docs/benchmarks.md

# For the offline H200 machine (no TensorFlow, no network): wheels into .whl/ and the data
# the GPU runs read into .gpu-data/ (both git-ignored); see docs/benchmarks.md.
KTS_DATA ?= ../shared/data
gpu-bundle:
	../shared/tools/offline-wheels pycocotools sentencepiece gensim smart_open wrapt
	mkdir -p .gpu-data && cp -r $(KTS_DATA)/bccd $(KTS_DATA)/multi30k $(KTS_DATA)/nltk_data $(KTS_DATA)/word-eval .gpu-data/

lint: $(STAMP)
	$(BIN)/ruff check shared pipelines tasks tests benchmarks

clean:
	rm -rf runs reports .pytest_cache
