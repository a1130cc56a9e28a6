"""The evaluation entry point end to end on the embedded city built small: one command scores a tiny
LLaVA (hf), AddressCLIP retrieval and the baselines in one table; answers files, an unreachable and a
flaky server through the command line; reruns that ask only for what is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from data_gen.dataset import load_dataset_dir
from eval import qa_eval
from helpers.qa import FakeChatServer, build_tiny_llava

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def test_split(small_dataset):
    return load_dataset_dir(small_dataset).split("test")


@pytest.fixture(scope="module")
def llava_dir(test_split, tmp_path_factory):
    """A tiny LLaVA that always answers with the test split's most common street and district."""
    pairs = Counter(zip(test_split["street"], test_split["district"])).most_common()
    for (street, district), _ in pairs:
        answer = f"The address of this photo might be {street}, {district}, Helsinki."
        words = answer.split()
        if len(set(words)) == len(words):          # a bigram chain needs distinct words
            break
    path = build_tiny_llava(tmp_path_factory.mktemp("llava") / "export", answer=answer)
    return path, street, district


@pytest.fixture(scope="module")
def clip_run(small_dataset, tmp_path_factory):
    from addressclip import train
    run = tmp_path_factory.mktemp("clip") / "addressclip"
    assert train.main(["--data", str(small_dataset), "--out", str(run), "--epochs", "1",
                       "--limit-train", "32", "--batch-size", "32", "--val-split", "none",
                       "--workers", "0", "--progress", "false"]) == 0
    return run


def test_one_command_scores_llava_addressclip_and_baselines(small_dataset, test_split, llava_dir,
                                                            clip_run, tmp_path, capsys):
    llava, street, district = llava_dir
    out = tmp_path / "qa"
    argv = ["--data", str(small_dataset), "--split", "test", "--out", str(out),
            "--run", f"llava-ial=hf:{llava}", "--run", f"addressclip:{clip_run}",
            "--max-new-tokens", "24", "--batch-size", "8", "--bootstrap", "200"]
    assert qa_eval.main(argv) == 0
    table = capsys.readouterr().out
    for name in ("llava-ial", "addressclip", "baseline-majority", "baseline-random"):
        assert f"| {name} |" in table
    report = json.loads((out / "report.json").read_text())
    runs = report["runs"]
    assert list(runs) == ["llava-ial", "addressclip", "baseline-majority", "baseline-random"]
    n = len(test_split)
    assert report["references"]["n"] == n and report["references"]["distances"] is True

    llava_m = runs["llava-ial"]["metrics"]
    expected_street = sum(s == street for s in test_split["street"]) / n
    expected_address = sum(s == street and d == district for s, d in
                           zip(test_split["street"], test_split["district"])) / n
    assert llava_m["street_acc"] == pytest.approx(expected_street) and expected_street > 0
    assert llava_m["address_acc"] == pytest.approx(expected_address)
    assert llava_m["error_rate"] == 0 and runs["llava-ial"]["kinds"] == {"address": n}
    item = runs["llava-ial"]["items"][0]
    assert item["parsed"]["street"] == street and item["parsed"]["city"] == "Helsinki"
    for key in ("street_acc", "district_acc", "address_acc", "refusal_rate"):
        assert 0 <= llava_m[key] <= 1
    lo, hi = llava_m["ci95"]["street_acc"]
    assert lo <= llava_m["street_acc"] <= hi

    # AddressCLIP through the harness agrees with stage one's own evaluation of the same checkpoint
    from addressclip.evaluate import evaluate_run
    own = evaluate_run(clip_run, out=tmp_path / "own_eval", data=str(small_dataset),
                       zero_shot=False)
    clip_m = runs["addressclip"]["metrics"]
    assert runs["addressclip"]["kinds"] == {"address": n}
    assert clip_m["street_acc"] == pytest.approx(own["sa@1"] / 100)
    assert clip_m["sub_street_acc"] >= own["ssa@1"] / 100 - 1e-9
    md = (out / "report.md").read_text()
    assert "## Per district" in md and "| addressclip | addressclip |" in md

    # a rerun reuses every stored model answer
    assert qa_eval.main(argv) == 0
    again = json.loads((out / "report.json").read_text())["runs"]
    assert again["llava-ial"]["reused_answers"] == n and again["addressclip"]["reused_answers"] == n
    assert again["llava-ial"]["metrics"]["street_acc"] == llava_m["street_acc"]


POSTER = {
    "p1": "This photo was taken in Peavey Plaza in Minneapolis, Minnesota, USA, on the corner of "
          "Nicollet Mall and 11th Street.",
    "p2": "This photo appears to have been taken on a city street, possibly in a downtown area or "
          "commercial district.",
    "p3": "This photo was taken at 400 Fifth Avenue in Pittsburgh, Pennsylvania.",
    "p4": "The address of this photo might be Grant Street, Downtown, Pittsburgh, PA, USA.",
}
TRUTH = {"p1": ("Fifth Avenue", "Downtown"), "p2": ("Grant Street", "Downtown"),
         "p3": ("Fifth Avenue", "Downtown"), "p4": ("Grant Street", "Downtown")}


def _write_references(tmp_path: Path) -> Path:
    refs = tmp_path / "refs.jsonl"
    (tmp_path / "img").mkdir()
    lines = []
    for i, (rid, (street, district)) in enumerate(TRUTH.items()):
        Image.new("RGB", (8, 8), (40 * i, 90, 0)).save(tmp_path / "img" / f"{rid}.jpg")
        lines.append(json.dumps({"id": rid, "street": street, "district": district,
                                 "city": "Pittsburgh", "image": f"img/{rid}.jpg"}))
    refs.write_text("\n".join(lines) + "\n")
    return refs


def test_answers_files_side_by_side_with_bad_inputs(tmp_path, pittsburgh_json):
    """As a script (``python eval/qa_eval.py``): two answers files, one with unknown ids and broken
    lines, and a served model that cannot be reached; everything is reported, nothing stops."""
    refs = _write_references(tmp_path)
    general = tmp_path / "general.jsonl"
    general.write_text("".join(json.dumps({"id": k, "answer": v}) + "\n" for k, v in POSTER.items()))
    sloppy = tmp_path / "sloppy.jsonl"
    sloppy.write_text(json.dumps({"id": "p4", "answer": "Grant St, Downtown"}) + "\n"
                      + "{not json\n" + json.dumps({"id": "p99", "answer": "Penn Avenue"}) + "\n")
    out = tmp_path / "qa"
    cmd = [sys.executable, str(REPO / "eval" / "qa_eval.py"), "--references", str(refs),
           "--gazetteer", str(pittsburgh_json), "--backend", "answers", "--answers", str(general),
           "--answers", str(sloppy), "--run", "gpt=openai:gpt-x@http://127.0.0.1:9/v1",
           "--max-retries", "0", "--timeout-s", "2", "--out", str(out), "--bootstrap", "100"]
    env = {**os.environ, "PYTHONPATH": ""}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    runs = report["runs"]
    assert list(runs) == ["general", "sloppy", "gpt", "baseline-majority", "baseline-random"]

    g = {it["id"]: it for it in runs["general"]["items"]}
    assert g["p1"]["parsed"]["kind"] == "other_city" and g["p1"]["parsed"]["city"] == "Minneapolis"
    assert g["p2"]["parsed"]["kind"] == "vague" and g["p2"]["parsed"]["district"] is None
    assert g["p3"]["correct"]["street"] and not g["p3"]["correct"]["district"]
    assert g["p3"]["parsed"]["house_number"] == "400"
    assert g["p4"]["correct"]["address"]
    m = runs["general"]["metrics"]
    assert (m["street_acc"], m["district_acc"], m["address_acc"]) == (0.5, 0.25, 0.25)

    s = runs["sloppy"]
    assert s["metrics"]["address_acc"] == 0.25 and s["metrics"]["error_rate"] == 0.75
    assert {e["id"] for e in s["errors"]} == {"p1", "p2", "p3"}
    assert all("no answer for this id" in e["reason"] for e in s["errors"])
    issues = {i.get("id") or i["line"]: i["reason"] for i in s["issues"]}
    assert issues["p99"] == "id not among the evaluated references" and "not JSON" in issues[2]

    gpt = runs["gpt"]
    assert gpt["failure"] is None and gpt["metrics"]["error_rate"] == 1.0
    assert all("cannot reach" in e["reason"] for e in gpt["errors"]) and len(gpt["errors"]) == 4
    assert "majority baseline is fitted on the scored items" in " ".join(report["notes"])
    md = (out / "report.md").read_text()
    assert "| general | answers |" in md and "| sloppy | answers |" in md
    assert "## Problems: gpt" in md and "p99" in md
    assert (out / "runs" / "gpt.jsonl").read_text().count("cannot reach") == 4


def test_flaky_server_then_rerun_asks_only_for_the_missing(tmp_path, pittsburgh_json):
    refs = _write_references(tmp_path)
    healthy = {"on": False}

    def behaviour(body, attempt):
        url = body["messages"][0]["content"][0]["image_url"]["url"]
        if not healthy["on"] and url == urls[1]:
            return ("status", 503, "overloaded")
        if not healthy["on"] and url == urls[2]:
            return ("raw", b"not json at all")
        return ("ok", "Fifth Avenue, Downtown, Pittsburgh")

    import base64

    from eval.backends.openai import jpeg_bytes
    urls = ["data:image/jpeg;base64," + base64.b64encode(jpeg_bytes(tmp_path / "img" / f"{k}.jpg"))
            .decode() for k in TRUTH]
    out = tmp_path / "qa"
    with FakeChatServer(behaviour) as server:
        argv = ["--references", str(refs), "--gazetteer", str(pittsburgh_json), "--backend", "openai",
                "--model", "served", "--base-url", server.url, "--max-retries", "1",
                "--backoff-s", "0.01", "--out", str(out), "--baselines", "false", "--bootstrap", "0"]
        assert qa_eval.main(argv) == 0
        first = json.loads((out / "report.json").read_text())["runs"]["served"]
        assert first["metrics"]["error_rate"] == 0.5
        reasons = {e["id"]: e["reason"] for e in first["errors"]}
        assert "HTTP 503" in reasons["p2"] and "not JSON" in reasons["p3"]
        asked_before = len(server.requests)
        healthy["on"] = True
        assert qa_eval.main(argv) == 0
        second = json.loads((out / "report.json").read_text())["runs"]["served"]
    assert len(server.requests) - asked_before == 2          # only the two failed items
    assert second["reused_answers"] == 2 and second["metrics"]["error_rate"] == 0
    assert second["metrics"]["street_acc"] == 0.5


def test_module_form_and_bad_arguments(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "eval.qa_eval", "--backend", "hf", "--data",
                           str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2 and "--backend hf needs --model" in proc.stderr
    assert qa_eval.main(["--out", str(tmp_path / "o")]) == 2
