"""Backends and the runner with bad inputs: a local chat server that answers, errors, drops
connections, replies with non-JSON or is slow; an unreachable server; answers files with unknown ids
and broken lines; partial results kept on disk and a rerun that asks only for what is missing."""

from __future__ import annotations

import base64
import json
import time

import pytest
from PIL import Image

from eval.backends import RunSpecError, parse_run, runs_from_config
from eval.backends.answers import AnswersBackend
from eval.backends.base import DEFAULT_PROMPT, Backend, BackendError, Item, Result
from eval.backends.openai import OpenAIBackend, OpenAIOptions
from eval.config import QAEvalConfig
from eval.runner import run_backend
from helpers.qa import FakeChatServer
from ial_core.launch import free_port


@pytest.fixture
def images(tmp_path):
    """Eight small images (JPEG, one PNG), each a different colour, keyed by id."""
    out = {}
    for i in range(8):
        path = tmp_path / f"img{i}.{'png' if i == 7 else 'jpg'}"
        Image.new("RGB", (8, 8), (30 * i, 0, 0)).save(path)
        out[f"id{i}"] = path
    return out


def _items(images):
    return [Item(k, p, DEFAULT_PROMPT) for k, p in images.items()]


def _url_to_id(images):
    from eval.backends.openai import jpeg_bytes
    return {"data:image/jpeg;base64," + base64.b64encode(jpeg_bytes(p)).decode(): k
            for k, p in images.items()}


def _options(url, **kw):
    return OpenAIOptions(**{"base_url": url, "concurrency": 4, "timeout_s": 0.5, "max_retries": 2,
                            "backoff_s": 0.01, **kw})


def test_openai_backend_sends_images_and_reads_answers(images, monkeypatch):
    ids = _url_to_id(images)

    def behaviour(body, attempt):
        return ("ok", f"Answer for {ids[body['messages'][0]['content'][0]['image_url']['url']]}")

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-env")
    with FakeChatServer(behaviour) as server:
        backend = OpenAIBackend("llava-ial", max_tokens=32, options=_options(server.url))
        results = {r.id: r for r in backend.generate(_items(images))}
    assert {k: r.answer for k, r in results.items()} == {k: f"Answer for {k}" for k in images}
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test-env"
    body = req["body"]
    assert body["model"] == "llava-ial" and body["temperature"] == 0 and body["max_tokens"] == 32
    image_part, text_part = body["messages"][0]["content"]
    assert image_part["type"] == "image_url"
    assert image_part["image_url"]["url"].startswith("data:image/jpeg;base64,/9j/")
    assert text_part == {"type": "text", "text": DEFAULT_PROMPT}
    assert "sk-test-env" not in json.dumps(backend.fingerprint())


def test_openai_backend_reports_each_failure_and_keeps_the_rest(images):
    """Per image: 0 fine, 1 a 503 then fine (retried), 2 always 500, 3 a 400 (not retried),
    4 non-JSON, 5 dropped connection, 6 slower than the timeout, 7 JSON without choices."""
    ids = _url_to_id(images)

    def behaviour(body, attempt):
        k = ids[body["messages"][0]["content"][0]["image_url"]["url"]]
        return {"id0": ("ok", "Grant Street"),
                "id1": ("status", 503, "busy") if attempt == 1 else ("ok", "Fifth Avenue"),
                "id2": ("status", 500, "boom"),
                "id3": ("status", 400, '{"error": "bad request: image too large"}'),
                "id4": ("raw", b"<html>gateway</html>"),
                "id5": ("drop",),
                "id6": ("sleep", 1.5, "late"),
                "id7": ("raw", b'{"object": "error"}')}[k]

    t0 = time.perf_counter()
    with FakeChatServer(behaviour) as server:
        backend = OpenAIBackend("m", max_tokens=16, options=_options(server.url))
        results = {r.id: r for r in backend.generate(_items(images))}
    assert time.perf_counter() - t0 < 8
    assert results["id0"].answer == "Grant Street"
    assert results["id1"].answer == "Fifth Avenue" and server.attempts[_key(ids, "id1")] == 2
    assert "HTTP 500" in results["id2"].error and "gave up after 3 attempts" in results["id2"].error
    assert server.attempts[_key(ids, "id2")] == 3
    assert "HTTP 400" in results["id3"].error and "image too large" in results["id3"].error
    assert server.attempts[_key(ids, "id3")] == 1
    assert "not JSON" in results["id4"].error and "gateway" in results["id4"].error
    assert "cannot reach" in results["id5"].error
    assert "cannot reach" in results["id6"].error and "timed out" in results["id6"].error.lower()
    assert "no choices" in results["id7"].error


def _key(ids, wanted):
    return next(url for url, k in ids.items() if k == wanted)


def test_unreachable_server_is_an_error_per_item(images):
    port = free_port()          # closed again: nothing listens there
    backend = OpenAIBackend("m", max_tokens=8,
                            options=_options(f"http://127.0.0.1:{port}/v1", max_retries=1))
    t0 = time.perf_counter()
    results = list(backend.generate(_items(images)))
    assert time.perf_counter() - t0 < 5
    assert len(results) == len(images)
    assert all(not r.ok and "cannot reach" in r.error for r in results)


def test_missing_image_never_reaches_the_server(tmp_path):
    backend = OpenAIBackend("m", max_tokens=8, options=_options("http://127.0.0.1:9/v1"))
    results = list(backend.generate([Item("a", None, "q"), Item("b", tmp_path / "nope.jpg", "q")]))
    assert "no image" in results[0].error and "not found" in results[1].error


# ---- answers files -------------------------------------------------------------------------------

def test_answers_file_problems_are_reported_not_fatal(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join([
        json.dumps({"id": "x1", "answer": "Grant Street"}),
        "this is not json",
        json.dumps({"id": "ghost", "answer": "Penn Avenue"}),
        json.dumps({"id": "x1", "answer": "second answer"}),
        json.dumps({"answer": "no id"}),
        json.dumps({"id": "x2", "answer": {"street": "Fifth Avenue"}}),
        json.dumps({"id": "x3", "error": "timeout upstream"}),
        json.dumps({"id": 4, "answer": "numeric id"}),
    ]) + "\n")
    backend = AnswersBackend(path)
    items = [Item(k, None, "q") for k in ("x1", "x2", "x3", "4", "x5")]
    results = {r.id: r for r in backend.generate(items)}
    assert results["x1"].answer == "Grant Street"
    assert json.loads(results["x2"].answer) == {"street": "Fifth Avenue"}
    assert "timeout upstream" in results["x3"].error
    assert results["4"].answer == "numeric id"
    assert "no answer for this id" in results["x5"].error
    reasons = {(i.get("line"), i.get("id")): i["reason"] for i in backend.issues}
    assert "not JSON" in reasons[(2, None)]
    assert reasons[(3, "ghost")] == "id not among the evaluated references"
    assert "repeated id" in reasons[(4, "x1")]
    assert '"id"' in reasons[(5, None)]
    with pytest.raises(BackendError, match="not found"):
        list(AnswersBackend(tmp_path / "missing.jsonl").generate(items))


# ---- the runner ----------------------------------------------------------------------------------

class Scripted(Backend):
    """Answers from a dict; raises after ``fail_after`` results (a crash mid-run)."""

    kind = "scripted"

    def __init__(self, answers, fail_after=None, tag="v1"):
        self.answers, self.fail_after, self.tag, self.asked = answers, fail_after, tag, []

    def fingerprint(self):
        return {"kind": self.kind, "tag": self.tag}

    def generate(self, items):
        for n, item in enumerate(items):
            if self.fail_after is not None and n >= self.fail_after:
                raise RuntimeError("model exploded")
            self.asked.append(item.id)
            a = self.answers.get(item.id)
            yield Result(item.id, answer=a) if a else Result(item.id, error="no luck")


def test_partial_results_survive_a_crash_and_a_rerun_asks_only_for_the_rest(tmp_path):
    items = [Item(f"i{k}", None, "q") for k in range(6)]
    answers = {f"i{k}": f"answer {k}" for k in range(6) if k != 2}
    record = run_backend("m", "m=scripted", Scripted(answers, fail_after=4), items, tmp_path)
    assert record.failure == "RuntimeError: model exploded"
    lines = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [x["id"] for x in lines] == ["i0", "i1", "i2", "i3"]
    assert lines[2] == {"id": "i2", "error": "no luck"}
    assert record.results["i5"].error.startswith("run failed: RuntimeError")

    again = Scripted(answers)
    record = run_backend("m", "m=scripted", again, items, tmp_path)
    assert again.asked == ["i2", "i4", "i5"]          # the failed item and the two never asked
    assert record.reused == 3 and record.failure is None
    assert [record.results[i.id].answer for i in items] == [
        "answer 0", "answer 1", None, "answer 3", "answer 4", "answer 5"]

    changed = Scripted(answers, tag="v2")             # other settings: start over, keep the old file
    run_backend("m", "m=scripted", changed, items, tmp_path)
    assert len(changed.asked) == 6
    assert list(tmp_path.glob("m.jsonl.stale-*"))


def test_truncated_last_line_is_ignored(tmp_path):
    items = [Item("a", None, "q"), Item("b", None, "q")]
    run_backend("m", "s", Scripted({"a": "x", "b": "y"}), items, tmp_path)
    path = tmp_path / "m.jsonl"
    path.write_text(path.read_text().splitlines()[0] + '\n{"id": "b", "ans')
    again = Scripted({"a": "x", "b": "y"})
    record = run_backend("m", "s", again, items, tmp_path)
    assert again.asked == ["b"] and record.results["b"].answer == "y"


# ---- run specifications --------------------------------------------------------------------------

def test_run_specs():
    s = parse_run("llava=hf:runs/x/export")
    assert (s.name, s.backend, s.target) == ("llava", "hf", "runs/x/export")
    s = parse_run("openai:gpt-4o@https://api.example.com/v1")
    assert (s.name, s.target, s.base_url) == ("gpt-4o", "gpt-4o", "https://api.example.com/v1")
    assert parse_run("answers:out/model_a.jsonl").name == "model_a"
    assert parse_run("addressclip:runs/helsinki/addressclip").name == "addressclip"
    for bad in ("hf", "nope:x", "hf:", "x=y"):
        with pytest.raises(RunSpecError):
            parse_run(bad)
    cfg = QAEvalConfig(backend="answers", answers=["a/x.jsonl", "b/x.jsonl"],
                       run=["x=hf:/models/m"])
    assert [s.name for s in runs_from_config(cfg)] == ["x", "x-2", "x-3"]
    with pytest.raises(RunSpecError, match="--model"):
        runs_from_config(QAEvalConfig(backend="hf"))
    with pytest.raises(RunSpecError, match="baseline"):
        runs_from_config(QAEvalConfig(run=["baseline-x=hf:/m"]))


def test_api_key_is_never_written():
    cfg = QAEvalConfig(api_key="sk-secret")
    assert "sk-secret" not in json.dumps(cfg.public())
