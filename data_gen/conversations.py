"""LLaVA-format conversations from a built IAL dataset: ``python -m data_gen.conversations``.

Writes, per split, two JSON lists in the layout LLaVA's training code reads (``id``, ``image``,
``conversations``: ``[{"from": "human", "value": "<image>\\n..."}, {"from": "gpt", "value": ...}]``):

- ``pretrain_{split}.json``: projector pre-training (feature alignment): image -> its scene caption;
- ``instruct_{split}.json``: instruction tuning. Per image, one conversation of one of these kinds
  (chosen by the seeded generator with the weights in :class:`ConversationConfig`):
  ``address`` (one question, one answer), ``district_street`` (district first, then the street),
  ``address_scene`` (the address, then a description of the scene) and ``unanswerable`` (a
  question the image cannot answer, e.g. the year, answered with a refusal). The phrasings come
  from :mod:`data_gen.questions`, which also keeps the held-out ones training never sees.

With ``--candidates`` (candidate-aware answering) each first question is preceded by AddressCLIP's
top streets for its image. At test time an answer can only be right when the true street is in
that list, so training teaches choosing from it: a training image whose list lacks its true street
is asked its answerable question without a list (``--candidates_include_truth``), rather than
taught to answer off the list. Lists keep retrieval's order, so the model also learns how far to
trust the ranking.

The street-level answer target is :func:`data_gen.addresses.full_address`, e.g.
``"Aleksanterinkatu, Kluuvi, Helsinki, Finland"``. Questions never contain any street, district,
city or country name (no template leaks an answer; :func:`check_no_leak` enforces it on every
sample written). Image paths stay relative to the dataset folder; ``meta.json`` records the folder,
the seed and the counts. The same dataset and seed give byte-identical files.
"""

from __future__ import annotations

import json
import random
import re
import sys
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from data_gen.addresses import full_address
from data_gen.dataset import IALDataset, load_dataset_dir

# The question bank (one place for training, inference and the QA harness); its names stay
# importable from here.
from data_gen.questions import (  # noqa: F401
    ADDRESS_ANSWERS,
    ADDRESS_QUESTIONS,
    DISTRICT_ANSWERS,
    DISTRICT_QUESTIONS,
    SCENE_FOLLOWUPS,
    STREET_ANSWERS,
    STREET_FOLLOWUPS,
    UNANSWERABLE,
    decorate,
    load_candidates,
    street_label,
    with_candidates,
    without_candidates,
)
from data_gen.schema import SPLITS
from ial_core.config import option, parse_config
from ial_core.errors import DataError, exit_2_on
from ial_core.files import atomic_dir, write_json

IMAGE_TOKEN = "<image>"
FORMAT_VERSION = 1
# Country of the cities whose OpenStreetMap extracts ship with the toolkit (used when --country is unset).
EMBEDDED_CITY_COUNTRY = {"Helsinki": "Finland"}

CAPTION_QUESTIONS = (
    "Describe the image briefly.",
    "Give a short description of this photo.",
    "What does this picture show?",
    "Write a brief caption for this street view.",
    "Summarize the visual content of the image.",
)

KINDS = ("address", "district_street", "address_scene", "unanswerable")


@dataclass
class ConversationConfig:
    data: Path = option(Path("runs/helsinki/data"), "dataset folder written by `python -m "
                                                    "data_gen.build`")
    out: Path | None = option(None, "output folder (default: DATA/conversations)")
    seed: int = option(0, "seed of the phrasing and kind choices")
    country: str | None = option(None, "country appended to every answer (default: Finland for the "
                                       "embedded Helsinki, none for other cities); '' for none")
    splits: list[str] = option(default_factory=lambda: list(SPLITS), help="splits to write")
    candidates: Path | None = option(None, "candidate-aware answering: JSON of AddressCLIP's top "
                                           "streets per image (python -m addressclip.candidates); "
                                           "every first question is preceded by that list")
    candidates_include_truth: bool = option(True, "training split: every candidate list of an "
                                                  "answerable conversation holds the true street "
                                                  "(an image whose list lacks it is asked without "
                                                  "a list)")
    weight_address: float = option(0.66, "share of single-turn address Q/A")
    weight_district_street: float = option(0.12, "share of two-turn conversations: district first, "
                                                 "then street")
    weight_address_scene: float = option(0.12, "share of two-turn conversations: address, then a "
                                               "scene description")
    weight_unanswerable: float = option(0.1, "share of questions the image cannot answer (answered "
                                             "with a refusal)")

    def weights(self) -> list[float]:
        w = [self.weight_address, self.weight_district_street, self.weight_address_scene,
             self.weight_unanswerable]
        if any(x < 0 for x in w) or sum(w) <= 0:
            raise DataError(f"conversation kind weights must be >= 0 with a positive sum, got {w}")
        return w


def resolve_country(config: ConversationConfig, city: str) -> str:
    if config.country is not None:
        return config.country
    return EMBEDDED_CITY_COUNTRY.get(city, "")


def human(text: str, *, image: bool = False) -> dict:
    return {"from": "human", "value": f"{IMAGE_TOKEN}\n{text}" if image else text}


def gpt(text: str) -> dict:
    return {"from": "gpt", "value": text}


def pretrain_sample(row: dict, rng: random.Random) -> dict:
    if not row["caption"].strip():
        raise DataError("empty caption; projector pre-training needs one per image", row=row["id"])
    return {"id": row["id"], "image": row["image"],
            "conversations": [human(rng.choice(CAPTION_QUESTIONS), image=True), gpt(row["caption"])]}


def instruct_sample(row: dict, kind: str, rng: random.Random, country: str) -> dict:
    """One conversation of ``kind`` about the image of ``row`` (a dataset record)."""
    address = full_address(row["street"], row["district"], row["city"], country)
    ask_address = human(decorate(rng.choice(ADDRESS_QUESTIONS), rng), image=True)
    answer_address = gpt(rng.choice(ADDRESS_ANSWERS).format(address=address))
    if kind == "address":
        turns = [ask_address, answer_address]
    elif kind == "district_street":
        turns = [human(decorate(rng.choice(DISTRICT_QUESTIONS), rng), image=True),
                 gpt(rng.choice(DISTRICT_ANSWERS).format(district=row["district"], city=row["city"])),
                 human(rng.choice(STREET_FOLLOWUPS)),
                 gpt(rng.choice(STREET_ANSWERS).format(street=row["street"], address=address))]
    elif kind == "address_scene":
        # The scene comes after the address so the description (which may quote a street sign)
        # never sits in the context of the address answer.
        turns = [ask_address, answer_address, human(rng.choice(SCENE_FOLLOWUPS)), gpt(row["caption"])]
    elif kind == "unanswerable":
        question, refusal = rng.choice(UNANSWERABLE)
        turns = [human(decorate(question, rng), image=True), gpt(refusal)]
    else:
        raise ValueError(f"unknown conversation kind {kind!r}; expected one of {KINDS}")
    return {"id": f"{row['id']}#{kind}", "image": row["image"], "kind": kind, "conversations": turns}


def _word_pattern(names: set[str]) -> re.Pattern | None:
    names = sorted((n for n in names if n), key=len, reverse=True)
    if not names:
        return None
    return re.compile(r"\b(" + "|".join(re.escape(n) for n in names) + r")\b", re.IGNORECASE)


def check_no_leak(samples: list[dict], forbidden: set[str]) -> None:
    """Raise if a human turn names any place in ``forbidden`` (streets, districts, city, country)."""
    pattern = _word_pattern(forbidden)
    if pattern is None:
        return
    for s in samples:
        for turn in s["conversations"]:
            if turn["from"] == "human" and (m := pattern.search(without_candidates(turn["value"]))):
                raise DataError(f"question names {m.group(0)!r}, which leaks an answer", row=s["id"])


def place_names(dataset: IALDataset, country: str) -> set[str]:
    names = {dataset.city, country}
    for sub in dataset.sub_streets:
        names.update((sub["street"], sub.get("cross_street", ""), sub["district"]))
    return {n for n in names if n}


def split_seed(seed: int, split: str) -> int:
    """A per-split seed that does not depend on which other splits are written."""
    return seed * 1_000_003 + zlib.crc32(split.encode("utf-8"))


def build_split(dataset: IALDataset, split: str, config: ConversationConfig,
                country: str) -> tuple[list[dict], list[dict]]:
    rows = dataset.split(split).select_columns(
        ["id", "image", "street", "district", "city", "caption"]).to_list()
    rng = random.Random(split_seed(config.seed, split))
    kinds = rng.choices(KINDS, weights=config.weights(), k=len(rows))
    pretrain = [pretrain_sample(r, rng) for r in rows]
    instruct = [instruct_sample(r, k, rng, country) for r, k in zip(rows, kinds)]
    if config.candidates is not None:
        table = load_candidates(config.candidates, split)
        include_truth = config.candidates_include_truth and split == "train"
        for r, s in zip(rows, instruct):
            if str(r["id"]) not in table:
                raise DataError(f"no candidates for image {r['id']!r} of split {split!r}",
                                path=config.candidates)
            if (include_truth and s["kind"] != "unanswerable"
                    and street_label(r["street"], r["district"]) not in table[str(r["id"])]):
                continue
            first = s["conversations"][0]
            first["value"] = human(with_candidates(first["value"][len(IMAGE_TOKEN) + 1:],
                                                   table[str(r["id"])]), image=True)["value"]
    return pretrain, instruct


def write_conversations(config: ConversationConfig) -> Path:
    """Write every split's files into ``config.out`` (atomically: temporary folder, then rename)."""
    dataset = load_dataset_dir(config.data)
    out = Path(config.out) if config.out is not None else Path(config.data) / "conversations"
    country = resolve_country(config, dataset.city)
    forbidden = place_names(dataset, country)
    counts = {}
    with atomic_dir(out) as tmp:
        for split in config.splits:
            pretrain, instruct = build_split(dataset, split, config, country)
            check_no_leak(pretrain + instruct, forbidden)
            write_json(tmp / f"pretrain_{split}.json", pretrain)
            write_json(tmp / f"instruct_{split}.json", instruct)
            counts[split] = {"pretrain": len(pretrain),
                             "instruct": dict(sorted(Counter(s["kind"] for s in instruct).items()))}
        meta = {"format_version": FORMAT_VERSION, "dataset": str(Path(config.data).resolve()),
                "image_root": str(dataset.image_root.resolve()), "city": dataset.city,
                "country": country, "seed": config.seed, "counts": counts,
                "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}}
        write_json(tmp / "meta.json", meta)
    return out


@exit_2_on(DataError)
def main(argv: list[str] | None = None) -> int:
    config = parse_config(ConversationConfig, argv, description=__doc__.split("\n")[0])
    out = write_conversations(config)
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    for split, c in meta["counts"].items():
        print(f"{split}: {c['pretrain']} captions, instruct {c['instruct']}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
