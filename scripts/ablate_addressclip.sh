#!/usr/bin/env bash
# The paper's loss ablation (address; caption; address+caption; address+geography; all three) on one
# dataset with one seed, each evaluated on the test split, printed beside the paper's Top-1 SSA.
#
#   scripts/ablate_addressclip.sh [extra train flags...]      e.g. --epochs 2, --model ViT-B-16 ...
#
# Environment: PYTHON (default .venv/bin/python if present, else python3), DATA (dataset folder,
# default runs/helsinki/data, built when missing), OUT (default runs/ablation), SEED (default 0).
# A row whose run already finished is not trained again (delete OUT/NAME to redo it).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
DATA=${DATA:-runs/helsinki/data}
OUT=${OUT:-runs/ablation}
SEED=${SEED:-0}

if [[ ! -f "$DATA/meta.json" ]]; then
  if [[ "$DATA" == "runs/helsinki/data" ]]; then
    "$PYTHON" -m data_gen.build --out "$DATA"
  else
    echo "no dataset at $DATA" >&2; exit 2
  fi
fi

# name and the loss weights of that row (a weight of 0 switches a loss off)
ROWS=(
  "address           --alpha 1 --beta 0   --gamma 0"
  "caption           --alpha 0 --beta 0.2 --gamma 0"
  "address+caption   --alpha 1 --beta 0.2 --gamma 0"
  "address+geography --alpha 1 --beta 0   --gamma 0.8"
  "all               --alpha 1 --beta 0.2 --gamma 0.8"
)

mkdir -p "$OUT"
for row in "${ROWS[@]}"; do
  read -r name weights <<<"$row"
  run="$OUT/$name"
  if [[ ! -f "$run/train_summary.json" ]]; then
    rm -rf "$run"
    echo "== $name: training ($weights)"
    # shellcheck disable=SC2086
    "$PYTHON" -m addressclip.train --data "$DATA" --out "$run" --seed "$SEED" $weights --no-progress "$@"
  fi
  echo "== $name: evaluating"
  "$PYTHON" -m addressclip.evaluate --run "$run" --out "$run/eval"
done

"$PYTHON" -m addressclip.ablation "$OUT"
