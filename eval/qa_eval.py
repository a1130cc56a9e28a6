"""Score free-form address answers: LLaVA-IAL, AddressCLIP, served models or answer files, side by side.

    python -m eval.qa_eval --data runs/helsinki/data \\
        --run llava-ial=hf:runs/helsinki/llava_ial/export \\
        --run addressclip=addressclip:runs/helsinki/addressclip --out runs/helsinki/qa_eval
    python eval/qa_eval.py --references refs.jsonl --gazetteer city.json \\
        --backend answers --answers a.jsonl --answers b.jsonl
    python -m eval.qa_eval --data DIR --backend openai --model llava-ial --base-url http://HOST:8000/v1
    python -m eval.qa_eval --data DIR --run hf:EXPORT --prompts heldout --baselines false --out OUT

Every run asks (or reads) one answer per reference item, appending each to ``OUT/runs/NAME.jsonl`` as
it arrives (a rerun asks only for what is missing), parses it with :mod:`eval.address_parser`, and
scores it with :mod:`eval.metrics`; the majority and random baselines are scored on the same items.
``OUT/report.json`` and ``OUT/report.md`` are rewritten after each run. Exit status 0, or 1 when a
run failed as a whole (its items are reported as errors; the other runs still complete), 2 for bad
arguments or inputs.
"""

from __future__ import annotations

import logging
import sys
import time
import zlib
from pathlib import Path

if __package__ in (None, ""):   # `python eval/qa_eval.py`: import the package, not the folder
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from data_gen.questions import load_candidates, prompt_set, with_candidates, without_candidates  # noqa: E402
from eval.address_parser import AddressParser  # noqa: E402
from eval.backends import BASELINE_PREFIX, Item, RunSpecError, build_backend, runs_from_config  # noqa: E402
from eval.backends.baselines import baselines  # noqa: E402
from eval.config import QAEvalConfig  # noqa: E402
from eval.gazetteer import Gazetteer  # noqa: E402
from eval.metrics import score_items  # noqa: E402
from eval.normalize import compact  # noqa: E402
from eval.references import References, from_dataset, from_jsonl  # noqa: E402
from eval.report import markdown, run_entry, write_reports  # noqa: E402
from eval.runner import run_backend  # noqa: E402
from ial_core.config import parse_config  # noqa: E402
from ial_core.errors import DataError, exit_2_on  # noqa: E402

log = logging.getLogger("eval.qa_eval")


def load_inputs(cfg: QAEvalConfig) -> tuple[Gazetteer, References]:
    """The gazetteer and the reference items the configuration names."""
    if cfg.references:
        source = cfg.gazetteer or cfg.data
        if not source:
            raise DataError("--references needs --gazetteer (city.json, an OSM extract or a "
                            "dataset folder) to match answers against")
        gazetteer = Gazetteer.load(source)
        return gazetteer, from_jsonl(cfg.references, crs=gazetteer.crs, limit=cfg.limit,
                                     seed=cfg.seed)
    if cfg.data:
        from data_gen.dataset import load_dataset_dir

        ial = load_dataset_dir(cfg.data)
        gazetteer = Gazetteer.load(cfg.gazetteer) if cfg.gazetteer else Gazetteer.from_dataset(ial)
        return gazetteer, from_dataset(ial, cfg.split, limit=cfg.limit, seed=cfg.seed)
    raise DataError("nothing to score: give --data DATASET_DIR, or --references FILE.jsonl with "
                    "--gazetteer")


def coverage_notes(gazetteer: Gazetteer, refs: References) -> list[str]:
    """Warnings about references the gazetteer cannot match (their answers can never be right)."""
    streets = {compact(s) for s in gazetteer.street_names} | {compact(a) for a in gazetteer.street_aliases}
    districts = {compact(d) for d in gazetteer.districts} | {compact(a) for a in
                                                             gazetteer.district_aliases}
    notes = []
    for what, known, values in (("street", streets, [r.street for r in refs.items]),
                                ("district", districts, [r.district for r in refs.items])):
        missing = sorted({v for v in values if compact(v) not in known})
        if missing:
            notes.append(f"{len(missing)} reference {what}(s) are not in the gazetteer, so no answer "
                         f"can match them: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    return notes


def item_prompts(cfg: QAEvalConfig, ids: list[str]) -> list[str]:
    """The question asked about each item: ``--prompt``, or one phrasing of the ``--prompts`` set.

    A phrasing is chosen by the item's id (not its position), so an item keeps its question
    whatever ``--limit`` selects, and stored answers stay valid for it.
    """
    if not cfg.prompts:
        asked = [cfg.prompt] * len(ids)
    else:
        try:
            questions = prompt_set(cfg.prompts)
        except ValueError as exc:
            raise DataError(f"--prompts: {exc}") from None
        asked = [questions[zlib.crc32(str(i).encode("utf-8")) % len(questions)] for i in ids]
    if cfg.candidates:
        table = load_candidates(cfg.candidates, cfg.split)
        missing = [i for i in ids if str(i) not in table]
        if missing:
            raise DataError(f"no candidates for {len(missing)} item(s), e.g. {missing[0]!r}",
                            path=cfg.candidates)
        asked = [with_candidates(q, table[str(i)]) for q, i in zip(asked, ids)]
    return asked


def evaluate(cfg: QAEvalConfig) -> dict:
    """Run, parse and score every requested run plus the baselines; write and return the report."""
    specs = runs_from_config(cfg)
    gazetteer, refs = load_inputs(cfg)
    parser = AddressParser(gazetteer, cfg.parser_config())
    out = Path(cfg.out)
    runs = [(s.name, s.text, build_backend(s, cfg, cache_dir=out / "cache")) for s in specs]
    if cfg.baselines:
        runs += [(BASELINE_PREFIX + k, f"baseline:{k}", b)
                 for k, b in baselines(refs, gazetteer, cfg.seed).items()]
    if not runs:
        raise RunSpecError("nothing to run: give --backend or --run (or leave --baselines on)")
    notes = coverage_notes(gazetteer, refs)
    if cfg.baselines and not refs.prior_streets:
        notes.append("the majority baseline is fitted on the scored items (no training split)")
    report = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "config": cfg.public(),
              "references": {"source": refs.source, "n": len(refs), "city": gazetteer.city,
                             "gazetteer": gazetteer.source, "distances": gazetteer.has_geometry},
              "runs": {}, "notes": notes}
    prompts = item_prompts(cfg, [r.id for r in refs.items])
    report["questions"] = {"set": cfg.prompts, "candidates": cfg.candidates,
                           "phrasings": sorted({without_candidates(p) for p in prompts})}
    items = [Item(r.id, r.image, p) for r, p in zip(refs.items, prompts)]
    for name, spec, backend in runs:
        log.info("%s (%s): %d items", name, spec, len(items))
        record = run_backend(name, spec, backend, items, out / "runs", fresh=cfg.fresh)
        results = [record.results[r.id] for r in refs.items]
        parsed = [parser.parse(res.answer) if res.ok else None for res in results]
        scores = score_items(refs.items, parsed, gazetteer)
        report["runs"][name] = run_entry(record, refs.items, parsed, scores, bootstrap=cfg.bootstrap,
                                         seed=cfg.seed, keep_items=cfg.keep_items)
        write_reports(out, report)
    return report


@exit_2_on(DataError, RunSpecError)
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("eval").setLevel(logging.INFO)
    cfg = parse_config(QAEvalConfig, argv, description=__doc__.split("\n")[0])
    report = evaluate(cfg)
    table = markdown(report).split("\n## ")[0]
    print(table.rstrip())
    print(f"\nwrote {Path(cfg.out) / 'report.json'} and report.md")
    return 1 if any(run["failure"] for run in report["runs"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
