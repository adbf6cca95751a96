#!/usr/bin/env bash
# The prepared device check for the offline H200 machine (JAX, no TensorFlow, no network).
# A session gets about 15 minutes of device time in all, start-up included, so everything
# runs in ONE call of at most 10 minutes, each step under its own time limit, and every step
# leaves what it measured under $OUT even when it is cut short.
#
# Here (networked machine):   make gpu-bundle
# Then the device tool:       run(command="bash benchmarks/h200.sh",
#                                 carry=[".whl", ".gpu-data"], timeout_s=590)
# Steps (seconds): nvidia-smi; benchmarks/seq2seq.py at the reference shape with the
# torch.compile peer (<= 200; the issue-4 goals line); the multi30k-transformer preset,
# train + evaluate (<= 330; the export stage says TensorFlow is missing and is skipped).
# H200_STEPS="bench" (or "transformer") runs only those steps.
set -u
OUT=${OUT:-$PWD/out-h200}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target .site .whl/*.whl > "$OUT/pip.log" 2>&1 || { echo "pip install failed, see pip.log"; exit 1; }
export PYTHONPATH=$PWD/.site:$PWD KERAS_BACKEND=jax KTS_DATA=.gpu-data PYTHONUNBUFFERED=1
STEPS=${H200_STEPS:-bench transformer}

step() {  # step NAME SECONDS COMMAND...: run it under a limit, log to $OUT/NAME.log
  local name=$1 limit=$2 start rc
  shift 2
  start=$(date +%s)
  timeout --signal=INT --kill-after=20 "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  echo "$name: rc=$rc, $(( $(date +%s) - start )) s (limit $limit s)" | tee -a "$OUT/steps.txt"
  tail -n 5 "$OUT/$name.log"
}

{ date -u; nvidia-smi; python3 -c "import jax, keras; print(jax.devices(), keras.__version__)"; } \
  > "$OUT/env.txt" 2>&1
for s in $STEPS; do
  case $s in
    bench)
      step bench-seq2seq 200 python3 benchmarks/seq2seq.py --torch-compile --json "$OUT/s2s-h200.json" ;;
    transformer)
      run=runs/seq2seq/h200-transformer
      step transformer 330 python3 -m tasks.seq2seq run --preset multi30k-transformer \
        --workdir "$run" --quiet
      mkdir -p "$OUT/transformer"
      for d in config.json training.json timings.json logs evaluation report; do
        [ -e "$run/$d" ] && cp -r "$run/$d" "$OUT/transformer/"
      done ;;
    *) echo "unknown step $s (bench, transformer)" ;;
  esac
done
exit 0
