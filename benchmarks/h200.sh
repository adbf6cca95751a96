#!/usr/bin/env bash
# The whole GPU suite for the offline H200 machine (JAX, no TensorFlow, no network), in ONE
# call of at most 10 minutes: a session gets about 15 minutes of device time in all, start-up
# included. Every task's benchmark runs under its own time limit, writes its --json under $OUT
# even when a later step is cut short, and benchmarks/goals.py prints the issues' goals table
# (measured, bound, met) at the end.
#
# Here (networked machine):   make gpu-bundle
# Then the device tool:       run(command="bash benchmarks/h200.sh",
#                                 carry=[".whl", ".gpu-data"], timeout_s=590)
# Steps and limits (s), most important first: classification 110 (ResNet-18 fit() against
# torch.compile), seq2seq 140 (reference shape, torch.compile peer), detection 80, style 80
# (Gatys 512 px x 500 iterations, stylizer at 512 px), embeddings 80 (nltk-sg against gensim
# with 16 workers), faces 50; about 540 s with the install. `transformer` (the
# multi30k-transformer preset, train + evaluate, 330 s) runs only when named.
# H200_STEPS="classification seq2seq" runs those steps only. H200_QUICK=1 runs every step at
# toy sizes without torch.compile, with every limit times H200_LIMIT_SCALE (default 5 then): the rehearsal of this
# script on a CPU machine (PYTHON=.venv/bin/python).
set -u
OUT=${OUT:-$PWD/out-h200}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
if [ -d .whl ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target .site .whl/*.whl > "$OUT/pip.log" 2>&1 || { echo "pip install failed, see pip.log"; exit 1; }
  export PYTHONPATH=$PWD/.site:$PWD
else
  export PYTHONPATH=$PWD
fi
export KERAS_BACKEND=jax KTS_DATA=${KTS_DATA:-.gpu-data} PYTHONUNBUFFERED=1
STEPS=${H200_STEPS:-classification seq2seq detection style embeddings faces}
QUICK=${H200_QUICK:-0}
if [ "$QUICK" = 1 ]; then SCALE=${H200_LIMIT_SCALE:-5}; else SCALE=${H200_LIMIT_SCALE:-1}; fi

step() {  # step NAME SECONDS COMMAND...: run it under a limit, log to $OUT/NAME.log
  local name=$1 limit=$(( $2 * SCALE )) start rc
  shift 2
  start=$(date +%s)
  timeout --signal=INT --kill-after=20 "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  echo "$name: rc=$rc, $(( $(date +%s) - start )) s (limit $limit s)" | tee -a "$OUT/steps.txt"
  tail -n 4 "$OUT/$name.log"
}

quick() {  # quick ARGS...: the arguments only in a rehearsal
  if [ "$QUICK" = 1 ]; then echo "$@"; fi
}

full() {  # full ARGS...: the arguments only in a real run (torch.compile takes minutes on a CPU)
  if [ "$QUICK" != 1 ]; then echo "$@"; fi
}

{ date -u; nvidia-smi 2>&1 | head -15; $PY -c "import jax, keras; print(jax.devices(), keras.__version__)"; } \
  > "$OUT/env.txt" 2>&1
for s in $STEPS; do
  case $s in
    classification)
      step classification 110 $PY benchmarks/classification.py $(full --torch-compile) \
        $(quick --images 64 --batch-size 32 --epochs 2) --json "$OUT/classification.json" ;;
    seq2seq)
      step seq2seq 140 $PY benchmarks/seq2seq.py $(full --torch-compile) \
        $(quick --size small --sentences 64 --batch-size 32 --epochs 2 --decode-sentences 4) \
        --json "$OUT/seq2seq.json" ;;
    detection)
      step detection 80 $PY benchmarks/detection.py $(quick --image-size 320 --images 4 --batch-size 2 --epochs 2) \
        --json "$OUT/detection.json" ;;
    style)
      step style 80 $PY benchmarks/style.py $(quick --quick) --json "$OUT/style.json" ;;
    embeddings)
      if [ "$QUICK" = 1 ]; then args="--preset smoke --epochs 1 --workers 2"; else args="--preset nltk-sg --workers 16"; fi
      step embeddings 80 $PY benchmarks/embeddings.py $args --json "$OUT/embeddings.json" ;;
    faces)
      step faces 50 $PY benchmarks/faces.py $(quick --images 32 --epochs 2) --json "$OUT/faces.json" ;;
    transformer)
      run=runs/seq2seq/h200-transformer
      step transformer 330 $PY -m tasks.seq2seq run --preset multi30k-transformer \
        --workdir "$run" --quiet
      mkdir -p "$OUT/transformer"
      for d in config.json training.json timings.json logs evaluation report; do
        [ -e "$run/$d" ] && cp -r "$run/$d" "$OUT/transformer/"
      done ;;
    *) echo "unknown step $s (classification seq2seq detection style embeddings faces transformer)" ;;
  esac
done
$PY benchmarks/goals.py "$OUT"/*.json --json "$OUT/goals.json" | tee "$OUT/goals.md"
exit 0
