"""The question bank (data_gen/questions.py): one design question everywhere, held-out phrasings
that training never sees, unanswerable questions that share the address questions' frames."""

from __future__ import annotations

import json

import pytest

from data_gen import conversations as conv
from data_gen import questions as q
from helpers.synthetic import make_synthetic_dataset


def test_one_question_constant_everywhere():
    from eval.backends.base import DEFAULT_PROMPT
    from eval.config import QAEvalConfig
    from llava_ial.inference import DEFAULT_QUESTION
    assert q.DESIGN_QUESTION == "Where was this photo taken? Tell me its street-level address."
    assert DEFAULT_PROMPT is q.DESIGN_QUESTION and DEFAULT_QUESTION is q.DESIGN_QUESTION
    assert QAEvalConfig().prompt is q.DESIGN_QUESTION


def test_design_and_poster_questions_are_trained_on():
    assert q.DESIGN_QUESTION in q.ADDRESS_QUESTIONS and q.POSTER_QUESTION in q.ADDRESS_QUESTIONS
    assert len(q.ADDRESS_QUESTIONS) >= 100 and len(set(q.ADDRESS_QUESTIONS)) == len(q.ADDRESS_QUESTIONS)


def test_heldout_phrasings_share_no_sentence_with_training():
    trained = q.training_sentences()
    for held in q.HELDOUT_ADDRESS_QUESTIONS + q.HELDOUT_UNANSWERABLE_QUESTIONS:
        assert not q.sentences(held) & trained, held
    assert len(q.HELDOUT_ADDRESS_QUESTIONS) >= 12 and len(q.HELDOUT_UNANSWERABLE_QUESTIONS) >= 10


def test_unanswerable_questions_share_the_address_frames():
    """Many refusal questions are at most three words away from an address question."""
    address = [q.normalized(a).split() for a in q.ADDRESS_QUESTIONS]

    def distance(a: list[str], b: list[str]) -> int:          # word-level Levenshtein
        row = list(range(len(b) + 1))
        for i, x in enumerate(a, 1):
            prev, row[0] = row[0], i
            for j, y in enumerate(b, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
        return row[-1]

    close = [u for u, _ in q.UNANSWERABLE
             if min(distance(q.normalized(u).split(), a) for a in address) <= 3]
    assert len(close) >= 5, close
    assert "when was this photo taken" in map(q.normalized, (u for u, _ in q.UNANSWERABLE))


def test_every_refusal_reads_as_a_refusal():
    from eval.address_parser import AddressParser
    from eval.gazetteer import Gazetteer
    parser = AddressParser(Gazetteer(city="Helsinki", streets=["Mannerheimintie"],
                                     districts=["Kluuvi"]))
    for refusal in q.REFUSALS:
        assert parser.parse(refusal).kind == "refusal", refusal


def test_prompt_sets():
    assert q.prompt_set("design") == (q.DESIGN_QUESTION,)
    assert q.prompt_set("heldout") == q.HELDOUT_ADDRESS_QUESTIONS
    with pytest.raises(ValueError, match="heldout_unanswerable"):
        q.prompt_set("held-out")


def test_training_conversations_never_contain_heldout_questions(tmp_path):
    data = make_synthetic_dataset(tmp_path / "data", city="Helsinki", locations_per_sub=12)
    out = conv.write_conversations(conv.ConversationConfig(data=data, out=tmp_path / "c", seed=1,
                                                           splits=["train"]))
    samples = json.loads((out / "instruct_train.json").read_text(encoding="utf-8"))
    raw = {t["value"].removeprefix("<image>\n") for s in samples for t in s["conversations"]
           if t["from"] == "human"}
    asked = {q.undecorated(t) for t in raw}
    assert asked <= set(q.training_questions())
    assert len(raw - asked) >= 20                             # decorated ones are there too
    assert not asked & set(q.HELDOUT_ADDRESS_QUESTIONS + q.HELDOUT_UNANSWERABLE_QUESTIONS)
    assert len(asked & set(q.ADDRESS_QUESTIONS)) >= 40       # the bank is used, not a few phrasings


def test_candidate_aware_conversations(tmp_path):
    from data_gen.dataset import load_dataset_dir
    from ial_core.errors import DataError
    data = make_synthetic_dataset(tmp_path / "data", city="Helsinki")
    rows = load_dataset_dir(data).split("train").to_list()
    table = {str(r["id"]): [f"{r['street']}, {r['district']}", "Otherkatu, Elsewhere"] for r in rows}
    path = tmp_path / "cand.json"
    path.write_text(json.dumps({"k": 2, "splits": {"train": table}}))
    out = conv.write_conversations(conv.ConversationConfig(data=data, out=tmp_path / "c",
                                                           splits=["train"], candidates=path))
    samples = json.loads((out / "instruct_train.json").read_text(encoding="utf-8"))
    by_image = {r["image"]: r for r in rows}
    assert {s["image"] for s in samples} == set(by_image)
    for s in samples:
        r = by_image[s["image"]]
        first = s["conversations"][0]["value"]
        head, question = first.split("\n", 2)[1:]
        assert first.startswith("<image>\n") and head == q.with_candidates("", table[str(r["id"])])[:-1]
        assert q.undecorated(question) in q.training_questions()
        assert all(not t["value"].startswith(q.CANDIDATES_PREFIX) for t in s["conversations"][1:])
    # the candidate line names streets, but a street in the question itself is still a leak
    leaky = {"id": "x", "conversations": [conv.human(q.with_candidates("Is this Alphakatu?", ["B"]),
                                                     image=True)]}
    with pytest.raises(DataError, match="Alphakatu"):
        conv.check_no_leak([leaky], {"Alphakatu", "B"})
    del table[str(rows[0]["id"])]
    path.write_text(json.dumps({"k": 2, "splits": {"train": table}}))
    with pytest.raises(DataError, match="no candidates for image"):
        conv.write_conversations(conv.ConversationConfig(data=data, out=tmp_path / "d",
                                                         splits=["train"], candidates=path))


def test_training_candidate_lists_hold_the_truth(tmp_path):
    """Training: an answerable question comes with a list only when the list names the true street
    (the others are asked without one); refusals and the evaluation splits keep every list."""
    from data_gen.dataset import load_dataset_dir
    data = make_synthetic_dataset(tmp_path / "data", city="Helsinki")
    ds = load_dataset_dir(data)
    truths = {str(r["id"]): f"{r['street']}, {r['district']}"
              for sp in ("train", "test") for r in ds.split(sp).to_list()}
    # every second image's list names its street (second place), the others' do not
    table = {sp: {str(r["id"]): ["Otherkatu, Elsewhere",
                                 truths[str(r["id"])] if i % 2 else "Thirdkatu, Elsewhere"]
                  for i, r in enumerate(ds.split(sp).to_list())} for sp in ("train", "test")}
    path = tmp_path / "cand.json"
    path.write_text(json.dumps({"k": 2, "splits": table}))

    def firsts(include: bool, split: str) -> list[tuple[str, str, str]]:
        out = conv.write_conversations(conv.ConversationConfig(
            data=data, out=tmp_path / f"c{include}{split}", splits=[split], candidates=path,
            candidates_include_truth=include, weight_unanswerable=0.3))
        samples = json.loads((out / f"instruct_{split}.json").read_text(encoding="utf-8"))
        return [(s["kind"], s["id"].split("#")[0], s["conversations"][0]["value"]) for s in samples]

    def listed(image_id):
        return q.with_candidates("", table["train"].get(image_id) or table["test"][image_id])[:-1]

    seen = {"with": 0, "without": 0, "refusal": 0}
    for kind, image_id, first in firsts(True, "train"):
        if kind == "unanswerable":
            assert listed(image_id) in first
            seen["refusal"] += 1
        elif truths[image_id] in table["train"][image_id]:
            assert listed(image_id) in first
            seen["with"] += 1
        else:
            assert q.CANDIDATES_PREFIX not in first
            seen["without"] += 1
    assert min(seen.values()) > 0, seen
    for _, image_id, first in firsts(False, "train") + firsts(True, "test"):
        assert listed(image_id) in first
