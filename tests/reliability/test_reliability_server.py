"""Reliability of serving: the QA harness against a server that misbehaves per request, and
the vLLM serving script's default bind address.

test_qa_backends.py already checks each failure kind of the OpenAI backend on its own and a rerun
after a crash of the runner; here the whole path (runner + backend + JSONL store) meets a server
that drops connections, sleeps past the timeout, answers non-JSON or 500 for some items and answers
the rest: the run ends with one error per bad item, every finished answer is on disk before the run
ends (written as it arrives), and a rerun skips finished items and asks again only for failed ones.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from eval.backends.base import DEFAULT_PROMPT, Item
from eval.backends.openai import OpenAIBackend, OpenAIOptions, jpeg_bytes
from eval.runner import run_backend
from helpers.qa import FakeChatServer

REPO = Path(__file__).resolve().parents[2]
BAD = {"drop": ("drop",), "500": ("status", 500, "internal error"),
       "html": ("raw", b"<html>502 Bad Gateway</html>")}


@pytest.fixture
def items(tmp_path):
    """Ten images: i0-i5 answer, i6 drops the connection, i7 is slow, i8 gets 500, i9 non-JSON."""
    out = []
    for k in range(10):
        path = tmp_path / "img" / f"i{k}.jpg"
        path.parent.mkdir(exist_ok=True)
        Image.new("RGB", (8, 8), (25 * k, 40, 90)).save(path)
        out.append(Item(f"i{k}", path, DEFAULT_PROMPT))
    return out


def _ids_by_url(items):
    return {"data:image/jpeg;base64," + base64.b64encode(jpeg_bytes(i.image)).decode(): i.id
            for i in items}


def _stored(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    return {rec["id"]: rec for rec in map(json.loads, path.read_text().splitlines())}


def _backend(url):
    return OpenAIBackend("served", max_tokens=16, options=OpenAIOptions(
        base_url=url, concurrency=4, timeout_s=0.5, max_retries=1, backoff_s=0.01))


def test_misbehaving_server_gives_per_item_errors_and_a_rerun_retries_only_those(items, tmp_path):
    ids = _ids_by_url(items)
    store = tmp_path / "runs" / "served.jsonl"
    healthy = {"on": False}
    seen_while_slow: list[set[str]] = []

    def behaviour(body, attempt):
        item = ids[body["messages"][0]["content"][0]["image_url"]["url"]]
        if healthy["on"] or item in {f"i{k}" for k in range(6)}:
            return ("ok", f"Grant Street, Downtown ({item})")
        if item == "i7":                      # slow: first see the others land on disk
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and len(_stored(store)) < 6:
                time.sleep(0.02)
            seen_while_slow.append(set(_stored(store)))
            return ("sleep", 1.2, "too late")
        return BAD[{"i6": "drop", "i8": "500", "i9": "html"}[item]]

    with FakeChatServer(behaviour) as server:
        t0 = time.perf_counter()
        first = run_backend("served", "served=openai", _backend(server.url), items, tmp_path / "runs")
        first_s = time.perf_counter() - t0
        asked_first = len(server.requests)
        on_disk = _stored(store)
        healthy["on"] = True
        second = run_backend("served", "served=openai", _backend(server.url), items,
                             tmp_path / "runs")
        asked_again = [ids[r["body"]["messages"][0]["content"][0]["image_url"]["url"]]
                       for r in server.requests[asked_first:]]

    assert first.failure is None and first_s < 10
    errors = {k: r.error for k, r in first.results.items() if not r.ok}
    assert sorted(errors) == ["i6", "i7", "i8", "i9"]
    assert "cannot reach" in errors["i6"]
    assert "timed out" in errors["i7"].lower()
    assert "HTTP 500" in errors["i8"] and "gave up after 2 attempts" in errors["i8"]
    assert "not JSON" in errors["i9"] and "Bad Gateway" in errors["i9"]
    # written as they arrived: the six answers were on disk while the slow item was still pending
    assert seen_while_slow and {f"i{k}" for k in range(6)} <= seen_while_slow[0]
    assert sorted(on_disk) == sorted(i.id for i in items)           # nothing lost
    assert {k for k, rec in on_disk.items() if "error" in rec} == set(errors)

    assert sorted(asked_again) == ["i6", "i7", "i8", "i9"]          # finished items skipped
    assert second.reused == 6 and second.failure is None
    assert all(r.ok for r in second.results.values())
    assert _stored(store)["i7"]["answer"] == "Grant Street, Downtown (i7)"


# ---- scripts/serve_vllm.sh -----------------------------------------------------------------------

def _fake_command(path: Path) -> Path:
    """An executable that prints each argument on its own line (stands in for python / vllm)."""
    path.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _serve(tmp_path: Path, env: dict, model: Path | None = None) -> subprocess.CompletedProcess:
    model = model or tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    base = {k: v for k, v in os.environ.items()
            if k not in ("HOST", "PORT", "API_KEY", "VLLM", "VLLM_CPU", "VLLM_PYTHON", "EXTRA_ARGS")}
    return subprocess.run(["bash", str(REPO / "scripts" / "serve_vllm.sh"), str(model)],
                          env={**base, **env}, capture_output=True, text=True, timeout=30)


def _flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_serve_script_binds_loopback_by_default_on_cpu(tmp_path):
    fake = _fake_command(tmp_path / "python")
    proc = _serve(tmp_path, {"VLLM_CPU": "1", "VLLM_PYTHON": str(fake)})
    assert proc.returncode == 0, proc.stderr
    argv = proc.stdout.splitlines()
    assert argv[:2] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert _flag(argv, "--host") == "127.0.0.1" and argv.count("--host") == 1
    assert _flag(argv, "--port") == "8000" and "--api-key" not in argv
    assert _flag(argv, "--model") == str(tmp_path / "model")


def test_serve_script_binds_loopback_by_default_on_gpu(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_command(bin_dir / "nvidia-smi")
    fake = _fake_command(tmp_path / "vllm")
    proc = _serve(tmp_path, {"VLLM": str(fake), "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert proc.returncode == 0, proc.stderr
    argv = proc.stdout.splitlines()
    assert argv[:2] == ["serve", str(tmp_path / "model")]
    assert _flag(argv, "--host") == "127.0.0.1" and argv.count("--host") == 1


def test_serve_script_other_host_and_key_only_when_asked(tmp_path):
    fake = _fake_command(tmp_path / "python")
    proc = _serve(tmp_path, {"VLLM_CPU": "1", "VLLM_PYTHON": str(fake), "HOST": "0.0.0.0",
                             "API_KEY": "sk-local"})
    argv = proc.stdout.splitlines()
    assert _flag(argv, "--host") == "0.0.0.0" and _flag(argv, "--api-key") == "sk-local"
    (tmp_path / "none").mkdir()
    missing = subprocess.run(["bash", str(REPO / "scripts" / "serve_vllm.sh"), str(tmp_path / "none")],
                             capture_output=True, text=True, timeout=30)
    assert missing.returncode == 2 and "config.json not found" in missing.stderr
