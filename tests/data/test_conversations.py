"""Conversation data for LLaVA-IAL (data_gen/conversations.py): format, determinism, no leaks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_gen import conversations as conv
from data_gen.addresses import full_address
from data_gen.dataset import load_dataset_dir
from helpers.synthetic import make_synthetic_dataset
from ial_core.errors import DataError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("conv") / "data", city="Helsinki")


@pytest.fixture(scope="module")
def written(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("conv_out") / "conversations"
    assert conv.main(["--data", str(dataset), "--out", str(out), "--seed", "3"]) == 0
    return out


def load(folder: Path, name: str) -> list[dict]:
    return json.loads((folder / name).read_text(encoding="utf-8"))


def test_files_per_split_in_llava_format(written, dataset):
    meta = load(written, "meta.json")
    ds = load_dataset_dir(dataset)
    for split in ("train", "val", "test"):
        for kind in ("pretrain", "instruct"):
            samples = load(written, f"{kind}_{split}.json")
            assert len(samples) == len(ds.split(split)) == meta["counts"][split]["pretrain"]
            for s in samples:
                assert set(s) >= {"id", "image", "conversations"}
                assert (dataset / s["image"]).is_file() and not Path(s["image"]).is_absolute()
                turns = s["conversations"]
                assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
                assert turns[0]["value"].startswith("<image>\n")
                assert all("<image>" not in t["value"] for t in turns[1:])
    assert meta["image_root"] == str(dataset.resolve()) and meta["country"] == "Finland"


def test_pretrain_is_image_to_caption(written, dataset):
    rows = {r["image"]: r for r in load_dataset_dir(dataset).split("train").to_list()}
    for s in load(written, "pretrain_train.json"):
        assert s["conversations"][1]["value"] == rows[s["image"]]["caption"]
        assert s["conversations"][0]["value"][len("<image>\n"):] in conv.CAPTION_QUESTIONS


def test_instruct_answers_carry_the_full_address(written, dataset):
    rows = {r["image"]: r for r in load_dataset_dir(dataset).split("train").to_list()}
    samples = load(written, "instruct_train.json")
    kinds = {s["kind"] for s in samples}
    assert kinds == set(conv.KINDS)
    for s in samples:
        r = rows[s["image"]]
        address = full_address(r["street"], r["district"], r["city"], "Finland")
        answers = [t["value"] for t in s["conversations"] if t["from"] == "gpt"]
        if s["kind"] == "unanswerable":
            assert answers[0] in {a for _, a in conv.UNANSWERABLE}
            assert r["street"] not in answers[0]
        elif s["kind"] == "district_street":
            assert r["district"] in answers[0] and r["street"] not in answers[0]
            assert address in answers[1]
        else:
            assert address in answers[0]
        if s["kind"] == "address_scene":
            assert answers[1] == r["caption"]


def test_questions_never_name_a_place(written, dataset):
    names = conv.place_names(load_dataset_dir(dataset), "Finland")
    pattern = conv._word_pattern(names)
    for split in ("train", "val", "test"):
        for kind in ("pretrain", "instruct"):
            for s in load(written, f"{kind}_{split}.json"):
                for t in s["conversations"]:
                    if t["from"] == "human":
                        assert not pattern.search(t["value"]), (s["id"], t["value"])


def test_leak_check_fires():
    sample = {"id": "x", "conversations": [conv.human("Is this Alphakatu?", image=True),
                                           conv.gpt("Yes.")]}
    with pytest.raises(DataError, match="Alphakatu"):
        conv.check_no_leak([sample], {"Alphakatu"})


def test_deterministic_per_seed(dataset, written, tmp_path):
    again = tmp_path / "again"
    other = tmp_path / "other"
    conv.write_conversations(conv.ConversationConfig(data=dataset, out=again, seed=3))
    conv.write_conversations(conv.ConversationConfig(data=dataset, out=other, seed=4))
    for name in ("pretrain_train.json", "instruct_train.json", "instruct_test.json"):
        assert (again / name).read_bytes() == (written / name).read_bytes()
    assert (other / "instruct_train.json").read_bytes() != (written / "instruct_train.json").read_bytes()


def test_country_setting(dataset, tmp_path):
    assert conv.resolve_country(conv.ConversationConfig(), "Helsinki") == "Finland"
    assert conv.resolve_country(conv.ConversationConfig(), "Pittsburgh") == ""
    out = conv.write_conversations(conv.ConversationConfig(data=dataset, out=tmp_path / "c",
                                                           country="", splits=["test"]))
    first = load(out, "instruct_test.json")
    assert all("Finland" not in t["value"] for s in first for t in s["conversations"])
    assert not (out / "instruct_train.json").exists()


def test_bad_weights_refused(dataset, tmp_path):
    with pytest.raises(DataError, match="weights"):
        conv.write_conversations(conv.ConversationConfig(
            data=dataset, out=tmp_path / "c", weight_address=0, weight_district_street=0,
            weight_address_scene=0, weight_unanswerable=0))
