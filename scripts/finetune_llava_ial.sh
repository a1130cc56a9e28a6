#!/usr/bin/env bash
# Stage two, step 2: instruction-tune LLaVA-IAL (projector + language model) with DeepSpeed.
#
# Environment (default):
#   NUM_GPUS     processes, one per GPU (1); without CUDA: CPU processes (DeepSpeed's CPU
#                accelerator, gloo), e.g. NUM_GPUS=2 on a 2-core machine
#   MODEL        LLaVA-IAL directory from `python -m llava_ial.compose` (runs/helsinki/llava_ial/base)
#   PROJECTOR    pretrained projector: the pretrain run's model/ folder
#                (runs/helsinki/llava_ial/pretrain/model); set PROJECTOR= to skip
#   DATA         conversations JSON (runs/helsinki/data/conversations/instruct_train.json)
#   OUTPUT_DIR   run folder (runs/helsinki/llava_ial/finetune); final model in OUTPUT_DIR/model
#   ZERO         DeepSpeed config (scripts/zero3.json; or zero2.json, zero3_offload.json)
#   MASTER_PORT  rendezvous port (29500)
#   PYTHON       interpreter with the toolkit installed (python)
#
# Extra arguments go to `python -m llava_ial.train` (they override anything above), e.g.
#   bash scripts/finetune_llava_ial.sh --lora True                 # LoRA instead of full
#   ZERO=scripts/zero2.json bash scripts/finetune_llava_ial.sh --lora True --bits 4   # QLoRA
#   bash scripts/finetune_llava_ial.sh --resume_from_checkpoint latest
# Learning rate and the other settings default to llava_ial/config.py (LLaVA recipe). GPUs train in
# bf16 with gradient checkpointing; CPUs in fp32. The launcher is DeepSpeed's `deepspeed` command,
# run as `$PYTHON -m deepspeed.launcher.runner` so that it uses the interpreter given.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON=${PYTHON:-python}
NUM_GPUS=${NUM_GPUS:-1}
MODEL=${MODEL:-runs/helsinki/llava_ial/base}
PROJECTOR=${PROJECTOR-runs/helsinki/llava_ial/pretrain/model}
DATA=${DATA:-runs/helsinki/data/conversations/instruct_train.json}
OUTPUT_DIR=${OUTPUT_DIR:-runs/helsinki/llava_ial/finetune}
ZERO=${ZERO:-$HERE/zero3.json}
MASTER_PORT=${MASTER_PORT:-29500}
PROJECTOR_ARGS=()
if [ -n "$PROJECTOR" ]; then PROJECTOR_ARGS=(--pretrained_projector "$PROJECTOR"); fi

# The device recipe (CPU: DS_ACCELERATOR=cpu, one thread per process, --use_cpu True; GPU:
# bf16 and activation checkpointing) is ial_core.launch's, shared with the main job.
exec "$PYTHON" -m ial_core.launch --launcher deepspeed --nproc "$NUM_GPUS" \
    --master_port "$MASTER_PORT" --bf16 true --activation_checkpointing true -- \
    --deepspeed "$ZERO" \
    --stage finetune \
    --model "$MODEL" \
    "${PROJECTOR_ARGS[@]}" \
    --conversations "$DATA" \
    --output_dir "$OUTPUT_DIR" \
    "$@"
