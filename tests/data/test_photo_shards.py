"""Photo checks and captions sharded over torchrun ranks (2 CPU ranks), resumable, merged, and
used by the builder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_gen.build import BuildConfig, build
from data_gen.dataset import load_dataset_dir
from data_gen.photo_shards import read_shards
from ial_core.launch import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _photos(tmp_path, helsinki, n=12):
    photos = tmp_path / "photos"
    (photos / "cam").mkdir(parents=True)
    lines = ["image,lat,lon,heading"]
    rng = np.random.default_rng(0)
    street = helsinki.street("Fabianinkatu").parts[0]
    for i, d in enumerate(np.linspace(10, street.length - 10, n)):
        p = street.interpolate(d)
        lon, lat = helsinki.projection.to_lonlat([p.x], [p.y])
        Image.fromarray(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)).save(photos / "cam" / f"{i}.jpg")
        lines.append(f"cam/{i}.jpg,{lat[0]:.7f},{lon[0]:.7f},{i * 30}")
    (photos / "cam" / "4.jpg").write_bytes(b"\xff\xd8\xff truncated")      # one unreadable photo
    (tmp_path / "gps.csv").write_text("\n".join(lines) + "\n")
    return photos, tmp_path / "gps.csv"


def _torchrun(photos, gps, work, *extra):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(free_port()), "-m", "data_gen.photo_shards", "--images", str(photos),
           "--gps-csv", str(gps), "--work", str(work), "--batch-size", "2", *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)


def test_two_ranks_resume_merge_and_feed_the_build(tmp_path, helsinki):
    photos, gps = _photos(tmp_path, helsinki)
    work = tmp_path / "work"
    first = _torchrun(photos, gps, work, "--stop-after", "5")       # "killed" after 5 images
    assert first.returncode == 0, first.stderr
    assert sorted(read_shards(work / "shards")) == [f"cam/{i}.jpg" for i in range(5)]
    assert not (work / "photos.json").exists()
    # a kill in the middle of a write leaves a partial line; it is ignored and cut off
    with open(work / "shards" / "rank-00001.jsonl", "a", encoding="utf-8") as f:
        f.write('{"image": "cam/9.jpg", "err')
    second = _torchrun(photos, gps, work)
    assert second.returncode == 0, second.stderr
    assert "rank 0/2: 4 image(s)" in second.stderr and "rank 1/2: 3 image(s)" in second.stderr
    merged = json.loads((work / "photos.json").read_text())
    assert merged["count"] == 12 and merged["errors"] == 1
    assert "cannot be decoded" in merged["images"]["cam/4.jpg"]["error"]
    lines = [json.loads(line) for p in sorted((work / "shards").glob("*.jsonl"))
             for line in p.read_text().splitlines()]
    assert sorted(r["image"] for r in lines) == sorted(f"cam/{i}.jpg" for i in range(12))  # once each
    # other settings on the same work folder are refused
    other_gps = tmp_path / "other.csv"
    other_gps.write_text(gps.read_text())
    other = _torchrun(photos, other_gps, work)
    assert other.returncode != 0 and "other settings" in other.stderr
    out = build(BuildConfig(out=tmp_path / "data", images=photos, gps_csv=gps, min_locations=1,
                            workers=1, photo_results=work / "photos.json", skip_bad=True))
    ds = load_dataset_dir(out)
    assert sum(len(ds.splits[s]) for s in ds.splits) == 11
    assert json.loads((out / "build_report.json").read_text())["by_reason"] == {"bad_image": 1}
    assert (out / "images" / "cam" / "0.jpg").read_bytes() == (photos / "cam" / "0.jpg").read_bytes()


def test_two_ranks_caption_as_one_process_does(tmp_path, helsinki, tiny_blip):
    from data_gen.captions import LocalCaptioner

    photos, gps = _photos(tmp_path, helsinki, n=6)
    work = tmp_path / "work"
    run = _torchrun(photos, gps, work, "--captioner", str(tiny_blip))
    assert run.returncode == 0, run.stderr
    merged = json.loads((work / "photos.json").read_text())["images"]
    good = [f"cam/{i}.jpg" for i in range(6) if i != 4]
    expected = LocalCaptioner(tiny_blip, batch_size=2).caption_paths(
        [photos / im for im in good], progress=False)
    assert [merged[im]["caption"] for im in good] == expected      # each photo keeps its own caption
    assert len(set(expected)) > 1 and merged["cam/4.jpg"]["caption"] == ""
