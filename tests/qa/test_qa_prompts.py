"""Which question each item is asked (eval.qa_eval --prompt / --prompts) and that stored answers
to one question are never reused for another."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from data_gen.questions import DESIGN_QUESTION, HELDOUT_ADDRESS_QUESTIONS
from eval.backends.base import Backend, Item, Result
from eval.config import QAEvalConfig
from eval.qa_eval import item_prompts
from eval.runner import run_backend
from ial_core.errors import DataError


class EchoBackend(Backend):
    """Answers every item with the question it was asked; counts what it was asked."""
    kind = "echo"

    def __init__(self):
        self.asked = 0

    def generate(self, items: Sequence[Item]) -> Iterator[Result]:
        for item in items:
            self.asked += 1
            yield Result(item.id, answer=item.prompt)


def test_default_is_the_design_question_and_prompt_overrides_it():
    ids = [f"img{i}" for i in range(5)]
    assert item_prompts(QAEvalConfig(), ids) == [DESIGN_QUESTION] * 5
    assert item_prompts(QAEvalConfig(prompt="Where?"), ids) == ["Where?"] * 5


def test_a_question_set_spreads_its_phrasings_and_keeps_each_items_question():
    ids = [f"img{i}" for i in range(400)]
    asked = item_prompts(QAEvalConfig(prompts="heldout"), ids)
    assert set(asked) == set(HELDOUT_ADDRESS_QUESTIONS)          # every phrasing is used
    assert max(asked.count(p) for p in set(asked)) < 3 * len(ids) / len(HELDOUT_ADDRESS_QUESTIONS)
    # an item's question depends on its id, not on which other items are scored
    subset = ids[::7][::-1]
    assert item_prompts(QAEvalConfig(prompts="heldout"), subset) == \
        [asked[ids.index(i)] for i in subset]
    with pytest.raises(DataError, match="unknown question set 'held'"):
        item_prompts(QAEvalConfig(prompts="held"), ids)


def test_answers_to_another_question_are_asked_again(tmp_path):
    items = [Item(f"i{k}", None, "Where was this photo taken?") for k in range(3)]
    backend = EchoBackend()
    run_backend("m", "echo", backend, items, tmp_path)
    run_backend("m", "echo", backend, items, tmp_path)             # same question: reused
    assert backend.asked == 3
    other = [Item(i.id, None, "When was this photo taken?") for i in items]
    record = run_backend("m", "echo", backend, other, tmp_path)
    assert backend.asked == 6 and record.reused == 0
    assert {r.answer for r in record.results.values()} == {"When was this photo taken?"}


def test_candidates_precede_each_items_question(tmp_path):
    import json
    path = tmp_path / "cand.json"
    path.write_text(json.dumps({"k": 2, "splits": {"test": {
        "a": ["Mannerheimintie, Kluuvi", "Kalevankatu, Kamppi"], "b": ["Kalevankatu, Kamppi"]}}}))
    asked = item_prompts(QAEvalConfig(candidates=str(path)), ["a", "b"])
    assert asked == ["Candidates from retrieval: Mannerheimintie, Kluuvi; Kalevankatu, Kamppi.\n"
                     + DESIGN_QUESTION,
                     "Candidates from retrieval: Kalevankatu, Kamppi.\n" + DESIGN_QUESTION]
    with pytest.raises(DataError, match="no candidates for 1 item.*'c'"):
        item_prompts(QAEvalConfig(candidates=str(path)), ["a", "c"])
    with pytest.raises(DataError, match="no split 'val'"):
        item_prompts(QAEvalConfig(candidates=str(path), split="val"), ["a"])
    path.write_text(json.dumps({"splits": {"test": {"a": "Mannerheimintie, Kluuvi"}}}))
    with pytest.raises(DataError, match="image 'a': expected a non-empty list"):
        item_prompts(QAEvalConfig(candidates=str(path)), ["a"])


def test_street_level_candidates_keep_rank_and_drop_repeats():
    import numpy as np

    from addressclip.candidates import street_level
    streets = ["A", "A", "B", "C", "B"]
    districts = ["X", "X", "X", "Y", "Y"]
    top = np.array([[1, 0, 2, 4, 3], [3, 4, 1, 0, 2]])
    assert street_level(top, streets, districts, 3) == [["A, X", "B, X", "B, Y"],
                                                       ["C, Y", "B, Y", "A, X"]]
