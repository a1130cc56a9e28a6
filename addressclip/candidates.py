"""AddressCLIP's top-k street-level candidates for every image of a dataset, for candidate-aware
answering in stage two: ``python -m addressclip.candidates --run RUN --out FILE.json [--k 5]``.

Retrieval-augmented geo-localisation gives the language model a short list of likely places and
lets it choose; here the list is stage one's own ranking over the sub-street candidates, reduced to
the first ``k`` distinct "street, district" pairs (the level LLaVA-IAL answers at). One file holds
every split, so the conversations (train) and the QA harness (test) read the same ranking:

    {"run": ..., "checkpoint": ..., "k": 5, "splits": {"train": {"<image id>": ["Street, District",
     ...], ...}, "val": {...}, "test": {...}}}
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_gen.questions import street_label
from ial_core.config import option, parse_config, usage_error
from ial_core.files import write_text

RANKED = 40   # sub-street candidates ranked per image before reducing them to k distinct streets


def street_level(top: np.ndarray, streets: list[str], districts: list[str], k: int) -> list[list[str]]:
    """Per row of ``top`` (candidate indices, best first) the first ``k`` distinct streets."""
    out = []
    for row in top:
        seen: list[str] = []
        for c in row:
            label = street_label(streets[c], districts[c])
            if label not in seen:
                seen.append(label)
                if len(seen) == k:
                    break
        out.append(seen)
    return out


def write_candidates(run_dir: str | Path, out: str | Path, *, k: int = 5, data: str | Path | None = None,
                     checkpoint: str = "latest", splits=("train", "val", "test"),
                     batch_size: int = 128, device: str = "auto") -> Path:
    import open_clip

    from addressclip import checkpoint as ckpt
    from addressclip.config import load_run_config
    from addressclip.data import CandidateSet, IALImageDataset, eval_loader
    from addressclip.distributed import resolve_device
    from addressclip.evaluate import encode_texts, predict
    from addressclip.model import AddressCLIP, load_clip_dir
    from addressclip.precision import resolve_precision
    from data_gen.dataset import load_dataset_dir

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    ial = load_dataset_dir(data or cfg.dataset_root)
    candidates = CandidateSet.from_dataset(ial)
    path = ckpt.resolve_checkpoint(run_dir, checkpoint)
    dev = resolve_device(device)
    precision = resolve_precision("auto", dev)
    clip, model_cfg = load_clip_dir(path, device=dev)
    model = AddressCLIP(clip)
    text = encode_texts(model, candidates.tokens(open_clip.get_tokenizer(cfg.model.model)), dev,
                        precision)
    result = {"run": str(run_dir.resolve()), "checkpoint": str(path.resolve()), "k": k, "splits": {}}
    for split in splits:
        ds = IALImageDataset(ial, split, candidates, preprocess_cfg=model_cfg["preprocess_cfg"],
                             train=False)
        loader = eval_loader(ds, batch_size, 0, pin_memory=False)
        top, _, _ = predict(model, loader, text, dev, precision, k=min(RANKED, len(candidates)))
        ranked = street_level(top, candidates.streets, candidates.districts, k)
        result["splits"][split] = dict(zip(map(str, ds.ids), ranked))
    out = Path(out)
    write_text(out, json.dumps(result, ensure_ascii=False, indent=0))
    return out


@dataclass
class CandidatesArgs:
    run: str = option(help="AddressCLIP run directory")
    out: str = option(help="JSON file to write")
    k: int = option(5, "distinct streets per image")
    data: str | None = option(None, "dataset folder (default: the run's)")
    checkpoint: str = option("latest", "latest, init, step_NNNNNN or a directory")
    device: str = option("auto", "auto | cpu | cuda")


def main(argv: list[str] | None = None) -> int:
    prog = "python -m addressclip.candidates"
    a = parse_config(CandidatesArgs, argv, prog=prog, description=__doc__.split("\n")[0])
    if a.k < 1:
        usage_error(prog, "--k must be >= 1")
    out = write_candidates(a.run, a.out, k=a.k, data=a.data, checkpoint=a.checkpoint,
                           device=a.device)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
