"""Validate and caption a large photo collection on many processes/GPUs, resumably:
``torchrun --nproc_per_node N -m data_gen.photo_shards --images DIR --gps-csv FILE --work WORK``.

Captioning a collection of millions of images (SF-IAL-Large) with BLIP is too slow on one GPU, so
the two per-image steps of the photo builder (decode every photo through
:func:`data_gen.photos.check_image`, EXIF orientation included, and caption it with
:class:`data_gen.captions.LocalCaptioner`) run here on ``torchrun``'s ranks, one GPU each
(``cuda:LOCAL_RANK``; CPU when there is none):

- the images of the GPS table that no shard has finished are dealt round-robin, one share per rank;
- rank ``r`` appends one JSON line per image to ``WORK/shards/rank-r.jsonl`` after every batch
  (``{"image", "error", "caption"}``), so a killed run loses at most a batch per rank; a rerun
  (with any number of ranks) reads every shard, skips what is done and deals out the rest;
- when all ranks are done, rank 0 merges the shards into ``WORK/photos.json`` (atomically), which
  ``python -m data_gen.build ... --photo-results WORK/photos.json`` uses instead of decoding and
  captioning again.

``WORK/run.json`` records the settings (GPS table, image folder, captioner, prompt); a rerun with
other settings is refused rather than mixing captions of two models. Ranks only meet at barriers
(gloo), never exchange tensors.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from data_gen.captions import DEFAULT_PROMPT
from ial_core.config import option, parse_config
from ial_core.errors import DataError, exit_2_on
from ial_core.files import write_json, write_text

SHARDS = "shards"
MERGED = "photos.json"


def _env() -> tuple[int, int, int]:
    return (int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("LOCAL_RANK", "0")))


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def read_shards(folder: Path) -> dict[str, dict]:
    """Every finished image of every shard file; a line cut short by a kill is ignored."""
    done: dict[str, dict] = {}
    for path in sorted(folder.glob("rank-*.jsonl")):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and isinstance(record.get("image"), str):
                    done[record["image"]] = {"error": record.get("error"),
                                             "caption": record.get("caption", "")}
    return done


def _open_shard(path: Path):
    """Append handle of this rank's shard, first cutting off a partial last line."""
    if path.exists():
        data = path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep != len(data):
            with open(path, "r+b") as f:
                f.truncate(keep)
    return open(path, "a", encoding="utf-8")


def _settings(args) -> dict:
    return {"gps_csv": str(Path(args.gps_csv).resolve()), "images": str(Path(args.images).resolve()),
            "captioner": None if args.captioner is None else str(Path(args.captioner).resolve()),
            "prompt": args.prompt if args.captioner is not None else None}


def _check_settings(work: Path, settings: dict, rank: int) -> None:
    path = work / "run.json"
    if rank == 0 and not path.exists():
        write_json(path, settings)
    _barrier()
    recorded = json.loads(path.read_text(encoding="utf-8"))
    if recorded != settings:
        raise DataError(f"this work folder was started with other settings {recorded}; use a new "
                        "--work folder (captions of two models must not mix)", path=path)


def process(images: list[str], rows: list[int], args, rank: int, world: int, local_rank: int) -> int:
    """Check (and caption) this rank's share of the unfinished images; returns how many it did."""
    from data_gen.photos import check_image

    work = Path(args.work)
    shards = work / SHARDS
    done = read_shards(shards)
    _barrier()      # every rank has read the same done set before any rank appends to it
    todo = [(im, row) for im, row in zip(images, rows) if im not in done][rank::world]
    captioner = None
    if args.captioner is not None and todo:
        import torch

        from data_gen.captions import LocalCaptioner

        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
        captioner = LocalCaptioner(args.captioner, batch_size=args.batch_size, prompt=args.prompt,
                                   device=device)
    root, source = Path(args.images), Path(args.gps_csv)
    with _open_shard(shards / f"rank-{rank:05d}.jsonl") as out:
        for start in range(0, len(todo), args.batch_size):
            batch = todo[start:start + args.batch_size]
            results = []
            for image, row in batch:
                try:
                    check_image(root, image, source, row)
                    results.append({"image": image, "error": None, "caption": ""})
                except DataError as exc:
                    results.append({"image": image, "error": str(exc), "caption": ""})
            good = [r for r in results if r["error"] is None]
            if captioner is not None and good:
                captions = captioner.caption_paths([root / r["image"] for r in good], progress=False)
                for r, caption in zip(good, captions):
                    r["caption"] = caption
            out.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results))
            out.flush()
            os.fsync(out.fileno())
    return len(todo)


def merge(work: Path, images: list[str], settings: dict) -> dict:
    """``WORK/photos.json`` from every shard; every image of the GPS table must be in one."""
    done = read_shards(work / SHARDS)
    missing = [im for im in images if im not in done]
    if missing:
        raise DataError(f"{len(missing)} image(s) have no result in any shard (e.g. {missing[0]!r}); "
                        "rerun to finish them", path=work / SHARDS)
    merged = {"settings": settings, "count": len(images),
              "errors": sum(1 for im in images if done[im]["error"]),
              "images": {im: done[im] for im in images}}
    write_text(work / MERGED, json.dumps(merged, ensure_ascii=False) + "\n")
    return merged


def read_results(path, settings_images: Path | None = None) -> dict[str, dict]:
    """The per-image results of a merged ``photos.json`` (for the builder)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        images = data["images"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"not a photos.json written by data_gen.photo_shards ({exc})", path=path) from exc
    if settings_images is not None and data.get("settings", {}).get("images") != str(
            Path(settings_images).resolve()):
        raise DataError(f"results are for the images in {data.get('settings', {}).get('images')!r}, "
                        f"not {str(Path(settings_images).resolve())!r}", path=path)
    return images


@dataclass
class PhotoShardsConfig:
    images: Path = option(help="photo folder (as for data_gen.build)")
    gps_csv: Path = option(help="image,lat,lon[,heading] table")
    work: Path = option(help="folder of shards and photos.json")
    captioner: Path | None = option(None, "local BLIP captioning model folder")
    prompt: str = option(DEFAULT_PROMPT, "captioning prompt (BLIP conditional captioning)")
    batch_size: int = option(16, "images decoded (and captioned) per batch and shard write")
    stop_after: int | None = option(None, argparse.SUPPRESS)    # tests: as if killed after N images


@exit_2_on(DataError)
def main(argv=None) -> int:
    import torch.distributed as dist

    from data_gen.photos import read_gps_csv

    args = parse_config(PhotoShardsConfig, argv, description=__doc__.split("\n")[0],
                        prog="torchrun --nproc_per_node N -m data_gen.photo_shards")
    rank, world, local_rank = _env()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo", timeout=datetime.timedelta(hours=6))
    try:
        table = read_gps_csv(args.gps_csv)          # bad rows stop here, on every rank alike
        images, rows = table.image, [int(r) for r in table.row]
        (args.work / SHARDS).mkdir(parents=True, exist_ok=True)
        settings = _settings(args)
        _check_settings(args.work, settings, rank)
        if args.stop_after is not None:             # as if killed after that many images
            images, rows = images[:args.stop_after], rows[:args.stop_after]
        n = process(images, rows, args, rank, world, local_rank)
        print(f"rank {rank}/{world}: {n} image(s) checked{' and captioned' if args.captioner else ''}",
              file=sys.stderr)
        _barrier()
        if rank == 0 and args.stop_after is None:
            merged = merge(args.work, table.image, settings)
            print(f"merged {merged['count']} image(s), {merged['errors']} unreadable -> "
                  f"{args.work / MERGED}")
        _barrier()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
