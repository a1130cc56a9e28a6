"""Which question each item is asked (eval.qa_eval --prompt / --prompts) and that stored answers
to one question are never reused for another."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from data_gen.errors import DataError
from data_gen.questions import DESIGN_QUESTION, HELDOUT_ADDRESS_QUESTIONS
from eval.backends.base import Backend, Item, Result
from eval.config import QAEvalConfig
from eval.qa_eval import item_prompts
from eval.runner import run_backend


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
