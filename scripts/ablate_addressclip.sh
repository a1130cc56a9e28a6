#!/usr/bin/env bash
# The paper's loss ablation (address; caption; address+caption; address+geography; all three) on one
# dataset over several seeds, each run evaluated on the test split, then the table of
# addressclip.ablation: mean +- std per row and the paired difference against `address` with a 95 %
# interval (seeds and a bootstrap over test images), beside the paper's Top-1 SSA.
#
#   scripts/ablate_addressclip.sh [--seeds "0 1 2"] [--jobs N] [extra train flags...]
#
# Environment (flags win): PYTHON (default .venv/bin/python if present, else python3), DATA (dataset
# folder, default runs/helsinki/data, built when missing), OUT (default runs/ablation), SEEDS
# (default "0 1 2"), JOBS (trainings at once, default 2 on 2+ cores), THREADS (torch threads per
# training, default cores / JOBS). Run NAME with seed S lives in OUT/NAME/seedS; a run that already
# finished is not trained again and an evaluated one is not evaluated again (delete the folder to redo
# it); a run interrupted after a checkpoint continues from it (--resume latest, which ends with the
# same weights as an uninterrupted run), so an interrupted ablation continues where it stopped.
# Each run's log: OUT/NAME/seedS.log.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
DATA=${DATA:-runs/helsinki/data}
OUT=${OUT:-runs/ablation}
SEEDS=${SEEDS:-0 1 2}
CORES=$(nproc 2>/dev/null || echo 1)
JOBS=${JOBS:-$(( CORES >= 2 ? 2 : 1 ))}
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seeds) SEEDS=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    *) EXTRA+=("$1"); shift ;;
  esac
done
THREADS=${THREADS:-$(( CORES / JOBS > 0 ? CORES / JOBS : 1 ))}

if [[ ! -f "$DATA/meta.json" ]]; then
  if [[ "$DATA" == "runs/helsinki/data" ]]; then
    "$PYTHON" -m data_gen.build --out "$DATA"
  else
    echo "no dataset at $DATA" >&2; exit 2
  fi
fi

# name and the loss weights of that row (a weight of 0 switches a loss off): the rows that
# `python -m addressclip.ablation --print_rows` prints from the loss registry
# (addressclip.losses.LOSS_TERMS). Listed here rather than asked for at run time so that the script
# starts no Python before the trainings; tests/test_addressclip_ablation.py checks the two agree.
ROWS=(
  "address           --alpha 1 --beta 0   --gamma 0"
  "caption           --alpha 0 --beta 0.2 --gamma 0"
  "address+caption   --alpha 1 --beta 0.2 --gamma 0"
  "address+geography --alpha 1 --beta 0   --gamma 0.8"
  "all               --alpha 1 --beta 0.2 --gamma 0.8"
)

# one run: train unless finished (continuing from a checkpoint), then evaluate unless already
# evaluated with per-image hits; training removes any stale evaluation first
one_run() {
  local name=$1 seed=$2 weights=$3 run="$OUT/$1/seed$2"
  if [[ ! -f "$run/train_summary.json" ]]; then
    local resume=()
    if [[ -f "$run/checkpoints/latest.json" ]]; then
      resume=(--resume latest)
      echo "== $name seed $seed: continuing from its latest checkpoint"
    else
      rm -rf "$run"
    fi
    rm -rf "$run/eval"   # an evaluation of an unfinished run is stale
    echo "== $name seed $seed: training ($weights, $THREADS threads)"
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS "$PYTHON" -m addressclip.train --data "$DATA" \
      --out "$run" --seed "$seed" $weights --progress false "${resume[@]}" "${EXTRA[@]}"
  fi
  if ! head -1 "$run/eval/predictions.csv" 2>/dev/null | grep -q hit_sa@5; then
    echo "== $name seed $seed: evaluating"
    OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS "$PYTHON" -m addressclip.evaluate --run "$run" \
      --out "$run/eval"
  fi
}

mkdir -p "$OUT"
failed=0
running=0
for seed in $SEEDS; do
  for row in "${ROWS[@]}"; do
    read -r name weights <<<"$row"
    mkdir -p "$OUT/$name"
    if (( running >= JOBS )); then
      wait -n || failed=1
      running=$(( running - 1 ))
    fi
    one_run "$name" "$seed" "$weights" >"$OUT/$name/seed$seed.log" 2>&1 \
      && echo "== $name seed $seed: done" \
      || { echo "== $name seed $seed: FAILED, see $OUT/$name/seed$seed.log" >&2; exit 1; } &
    running=$(( running + 1 ))
  done
done
while (( running > 0 )); do
  wait -n || failed=1
  running=$(( running - 1 ))
done
if (( failed )); then echo "some runs failed; rerun to retry them" >&2; exit 1; fi

"$PYTHON" -m addressclip.ablation "$OUT"
