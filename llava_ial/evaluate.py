"""Street and district accuracy of free-form answers:
``python -m llava_ial.evaluate --model DIR --data DATASET --split test``.

Every image of the split gets the same address question (greedy answers). An answer's street is the
first street name of the city (``addresses.json``) it mentions, as a whole word, longest name first
at a position; it is right when it is the image's true street. Districts likewise. So an answer that
lists several streets scores by its first. Baseline: always answering the majority street and
district of the training split. (The full question-answering harness is ``eval/qa_eval.py``.)
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from data_gen.dataset import load_dataset_dir
from llava_ial.inference import DEFAULT_QUESTION, answer, load_for_inference, read_image


def name_pattern(names) -> re.Pattern:
    names = sorted({n for n in names if n}, key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b", re.IGNORECASE)


def first_name(pattern: re.Pattern, text: str, canonical: dict[str, str]) -> str:
    m = pattern.search(text)
    return canonical[m.group(1).lower()] if m else ""


def score(answers: list[str], streets: list[str], districts: list[str], all_streets,
          all_districts) -> dict:
    """Accuracies (percent) of the first street / district named in each answer."""
    sp, dp = name_pattern(all_streets), name_pattern(all_districts)
    s_can = {s.lower(): s for s in all_streets}
    d_can = {d.lower(): d for d in all_districts}
    pred_s = [first_name(sp, a, s_can) for a in answers]
    pred_d = [first_name(dp, a, d_can) for a in answers]
    n = max(len(answers), 1)
    return {"n_images": len(answers),
            "street_accuracy": 100 * sum(p == t for p, t in zip(pred_s, streets)) / n,
            "district_accuracy": 100 * sum(p == t for p, t in zip(pred_d, districts)) / n,
            "answers_naming_a_street": 100 * sum(bool(p) for p in pred_s) / n,
            "predicted_streets": pred_s, "predicted_districts": pred_d}


def majority_baseline(train, streets: list[str], districts: list[str]) -> dict:
    top_s = collections.Counter(train["street"]).most_common(1)[0][0]
    top_d = collections.Counter(train["district"]).most_common(1)[0][0]
    n = max(len(streets), 1)
    return {"street": top_s, "district": top_d,
            "street_accuracy": 100 * sum(s == top_s for s in streets) / n,
            "district_accuracy": 100 * sum(d == top_d for d in districts) / n}


def evaluate(model_dir, data, split="test", *, question=DEFAULT_QUESTION, limit=None,
             batch_size=32, max_new_tokens=48, model=None, processor=None) -> dict:
    dataset = load_dataset_dir(data)
    rows = dataset.split(split)
    if limit and limit < len(rows):          # evenly spaced, so every part of the city is in
        rows = rows.select(np.linspace(0, len(rows) - 1, limit).round().astype(int).tolist())
    if model is None:
        model, processor = load_for_inference(model_dir)
    images = [read_image(dataset.image_path(p)) for p in rows["image"]]
    start = time.perf_counter()
    answers = answer(model, processor, images, question, batch_size=batch_size,
                     max_new_tokens=max_new_tokens)
    seconds = time.perf_counter() - start
    all_streets = {s["street"] for s in dataset.sub_streets}
    all_districts = {s["district"] for s in dataset.sub_streets}
    result = score(answers, rows["street"], rows["district"], all_streets, all_districts)
    result.update(model=str(model_dir), data=str(data), split=split, question=question,
                  majority=majority_baseline(dataset.split("train"), rows["street"], rows["district"]),
                  seconds=round(seconds, 2), ms_per_image=round(1000 * seconds / max(len(rows), 1), 1))
    result["rows"] = [{"image": i, "street": s, "district": d, "answer": a, "pred_street": ps,
                       "pred_district": pd} for i, s, d, a, ps, pd in
                      zip(rows["image"], rows["street"], rows["district"], answers,
                          result.pop("predicted_streets"), result.pop("predicted_districts"))]
    return result


def report(result: dict) -> str:
    m = result["majority"]
    return (f"{result['split']}: {result['n_images']} images, question {result['question']!r}\n"
            f"  street accuracy   {result['street_accuracy']:6.2f}%   (majority baseline "
            f"{m['street_accuracy']:.2f}%: always {m['street']!r})\n"
            f"  district accuracy {result['district_accuracy']:6.2f}%   (majority baseline "
            f"{m['district_accuracy']:.2f}%: always {m['district']!r})\n"
            f"  answers naming a street {result['answers_naming_a_street']:.1f}%; "
            f"{result['ms_per_image']} ms per image")


def write_outputs(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = result["rows"]
    (out / "metrics.json").write_text(json.dumps({k: v for k, v in result.items() if k != "rows"},
                                                 indent=2), encoding="utf-8")
    with open(out / "answers.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["image"])
        w.writeheader()
        w.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m llava_ial.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="LLaVA-IAL folder (full, lora or projector)")
    p.add_argument("--data", required=True, help="dataset folder (python -m data_gen.build)")
    p.add_argument("--split", default="test")
    p.add_argument("--question", default=DEFAULT_QUESTION)
    p.add_argument("--limit", type=int, default=None, help="only N evenly spaced images")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--out", type=Path, default=None, help="folder for metrics.json and answers.csv")
    a = p.parse_args(argv)
    result = evaluate(a.model, a.data, a.split, question=a.question, limit=a.limit,
                      batch_size=a.batch_size, max_new_tokens=a.max_new_tokens)
    print(report(result))
    if a.out:
        write_outputs(result, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
