"""Stage one as a QA baseline: AddressCLIP's top-1 candidate, written as an answer.

Uses :mod:`addressclip.evaluate`'s own pieces (candidate embeddings, cached per checkpoint, and
``predict``) on the evaluated images only, in chunks, so results reach the run's JSONL as they come.
The answer is the candidate's sub-street with district and city, "Aleksanterinkatu & Mannerheimintie,
Kluuvi, Helsinki", and goes through the same parser as a model's words: the table then compares like
with like (SA/SSA of ``addressclip.evaluate`` are the same numbers as street / sub-street accuracy
here when every answer parses).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from eval.backends.base import Backend, BackendError, Item, Result

CHUNK = 512   # images per predict call (one JSONL flush each)


class AddressCLIPBackend(Backend):
    kind = "addressclip"
    target_flag = "--addressclip-run DIR"

    @classmethod
    def flag_targets(cls, cfg) -> list[str]:
        return [cfg.addressclip_run]

    @classmethod
    def default_name(cls, target: str) -> str:
        return "addressclip"

    @classmethod
    def from_config(cls, target, cfg, *, base_url, cache_dir) -> AddressCLIPBackend:
        return cls(target, data=cfg.data, split=cfg.split, checkpoint=cfg.addressclip_checkpoint,
                   batch_size=cfg.batch_size, device=cfg.device, cache_dir=cache_dir)

    def __init__(self, run_dir: str | Path, *, data: str | Path | None, split: str,
                 checkpoint: str, batch_size: int, device: str, cache_dir: Path | None):
        self.run_dir, self.data, self.split = Path(run_dir), data, split
        self.checkpoint, self.batch_size, self.device = checkpoint, batch_size, device
        self.cache_dir = cache_dir

    def fingerprint(self) -> dict:
        """The checkpoint ``latest`` resolves to now (and its weights' mtime): a run that trained on
        since the last evaluation is evaluated again."""
        from addressclip import checkpoint as ckpt
        try:
            path = ckpt.resolve_checkpoint(self.run_dir, self.checkpoint)
            resolved = [str(path.resolve()), (path / ckpt.MODEL_FILE).stat().st_mtime_ns]
        except (ValueError, OSError, KeyError):
            resolved = None
        return {"kind": self.kind, "run": str(self.run_dir.resolve()), "checkpoint": self.checkpoint,
                "resolved": resolved, "split": self.split}

    def generate(self, items: Sequence[Item]) -> Iterator[Result]:
        import open_clip
        from torch.utils.data import Subset

        from addressclip import checkpoint as ckpt
        from addressclip.config import load_run_config
        from addressclip.data import CandidateSet, IALImageDataset, eval_loader
        from addressclip.distributed import resolve_device
        from addressclip.evaluate import cached_candidate_features, predict
        from addressclip.model import AddressCLIP, load_clip_dir
        from addressclip.precision import resolve_precision
        from data_gen.dataset import load_dataset_dir

        if not (self.run_dir / "config.yaml").is_file():
            raise BackendError(f"{self.run_dir}: not an AddressCLIP run directory (no config.yaml)")
        cfg = load_run_config(self.run_dir)
        ial = load_dataset_dir(self.data or cfg.dataset_root)
        candidates = CandidateSet.from_dataset(ial)
        path = ckpt.resolve_checkpoint(self.run_dir, self.checkpoint)
        device = resolve_device(self.device)
        precision = resolve_precision("auto", device)
        clip, model_cfg = load_clip_dir(path, device=device)
        model = AddressCLIP(clip)
        ds = IALImageDataset(ial, self.split, candidates, preprocess_cfg=model_cfg["preprocess_cfg"],
                             train=False)
        text, _ = cached_candidate_features(model, candidates, open_clip.get_tokenizer(cfg.model.model),
                                            device, precision, self.cache_dir,
                                            path / ckpt.MODEL_FILE)
        answers = [_answer(rec, ial.city) for rec in _records_by_address(ial, candidates)]
        row = {image_id: i for i, image_id in enumerate(ds.ids)}
        found = []
        for item in items:
            if item.id in row:
                found.append(item)
            else:
                yield Result(item.id, error=f"not an image of split {self.split!r} of {ial.root}")
        for start in range(0, len(found), CHUNK):
            chunk = found[start:start + CHUNK]
            loader = eval_loader(Subset(ds, [row[item.id] for item in chunk]), self.batch_size, 0,
                                 pin_memory=False)
            top, _, _ = predict(model, loader, text, device, precision, k=1)
            for item, best in zip(chunk, top[:, 0].tolist()):
                yield Result(item.id, answer=answers[best])


def _records_by_address(ial, candidates) -> list[dict]:
    """The addresses.json record of each candidate class, in class order."""
    first: dict[str, dict] = {}
    for rec in ial.sub_streets:
        first.setdefault(rec["address"], rec)
    return [first[a] for a in candidates.addresses]


def _answer(rec: dict, city: str) -> str:
    from eval.gazetteer import cross_street_names  # (shapely: only when this backend runs)

    cross = "/".join(cross_street_names(rec.get("cross_street")))
    place = f"{rec['street']} & {cross}" if cross else rec["street"]
    return ", ".join(p for p in (place, rec["district"], city) if p)
