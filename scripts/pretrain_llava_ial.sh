#!/usr/bin/env bash
# Stage two, step 1: pre-train (align) the LLaVA-IAL projector on image -> caption, with DeepSpeed.
# The language model and the vision tower stay frozen; learning rate 1e-3 (LLaVA recipe).
#
# Environment (default):
#   NUM_GPUS     processes, one per GPU (1); without CUDA: CPU processes (DeepSpeed's CPU
#                accelerator, gloo), e.g. NUM_GPUS=2 on a 2-core machine
#   MODEL        LLaVA-IAL directory from `python -m llava_ial.compose` (runs/helsinki/llava_ial/base)
#   DATA         conversations JSON (runs/helsinki/data/conversations/pretrain_train.json)
#   OUTPUT_DIR   run folder (runs/helsinki/llava_ial/pretrain); the projector lands in
#                OUTPUT_DIR/model, which scripts/finetune_llava_ial.sh reads as PROJECTOR
#   ZERO         DeepSpeed config (scripts/zero2.json; or zero3.json, zero3_offload.json)
#   MASTER_PORT  rendezvous port (29500)
#   PYTHON       interpreter with the toolkit installed (python)
#
# Extra arguments go to `python -m llava_ial.train` (they override anything above), e.g.
#   bash scripts/pretrain_llava_ial.sh --num_train_epochs 2 --per_device_train_batch_size 32
# The launcher is DeepSpeed's `deepspeed` command, run as `$PYTHON -m deepspeed.launcher.runner`.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON=${PYTHON:-python}
NUM_GPUS=${NUM_GPUS:-1}
MODEL=${MODEL:-runs/helsinki/llava_ial/base}
DATA=${DATA:-runs/helsinki/data/conversations/pretrain_train.json}
OUTPUT_DIR=${OUTPUT_DIR:-runs/helsinki/llava_ial/pretrain}
ZERO=${ZERO:-$HERE/zero2.json}
MASTER_PORT=${MASTER_PORT:-29500}

# The device recipe (CPU: DS_ACCELERATOR=cpu, one thread per process, --use_cpu True; GPU:
# bf16 and activation checkpointing) is ial_core.launch's, shared with the main job.
exec "$PYTHON" -m ial_core.launch --launcher deepspeed --nproc "$NUM_GPUS" \
    --master_port "$MASTER_PORT" --bf16 true --activation_checkpointing true -- \
    --deepspeed "$ZERO" \
    --stage pretrain \
    --model "$MODEL" \
    --conversations "$DATA" \
    --output_dir "$OUTPUT_DIR" \
    "$@"
