"""The ablation table over seeds: reading per-image hits, pairing by seed and image, the interval."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy import stats

from addressclip.ablation import AblationError, SeedRun, load_row, paired_difference, read_predictions, table

KEYS = ("ssa@1", "ssa@5", "sa@1", "sa@5")


def write_run(eval_dir, ids, hit, *, shuffle_seed=None):
    """An eval folder as addressclip.evaluate writes it, with ``hit`` (bool [N]) for every metric."""
    eval_dir.mkdir(parents=True)
    pct = float(100 * np.mean(hit))
    (eval_dir / "metrics.json").write_text(json.dumps(
        {**{k: pct for k in KEYS}, "n_images": len(ids), "split": "test", "dataset": "d",
         "n_candidates": 10, "chance_ssa@1": 10.0}))
    order = np.arange(len(ids))
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(len(ids))
    with open(eval_dir / "predictions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "true_address", "predicted_address", "correct", "similarity",
                    "utm_easting", "utm_northing", *(f"hit_{k}" for k in KEYS)])
        for i in order:
            w.writerow([ids[i], "a", "b", int(hit[i]), "0.5", 0, 0, *[int(hit[i])] * 4])


def seed_run(hit):
    ids = np.array([f"img{i:04d}" for i in range(len(hit))])
    return SeedRun({}, ids, {k: np.asarray(hit, bool) for k in KEYS})


def test_read_predictions_aligns_rows_by_image_id(tmp_path):
    ids = [f"img{i:03d}" for i in range(50)]
    hit = np.arange(50) % 3 == 0
    write_run(tmp_path / "a", ids, hit)
    write_run(tmp_path / "b", ids, hit, shuffle_seed=1)   # same run, rows in another order
    ia, ha = read_predictions(tmp_path / "a" / "predictions.csv")
    ib, hb = read_predictions(tmp_path / "b" / "predictions.csv")
    assert list(ia) == list(ib) == sorted(ids)
    np.testing.assert_array_equal(ha["sa@1"], hb["sa@1"])
    np.testing.assert_array_equal(ha["sa@1"], hit)


def test_read_predictions_names_the_bad_line_and_old_files(tmp_path):
    write_run(tmp_path / "a", ["x", "y"], np.array([True, False]))
    p = tmp_path / "a" / "predictions.csv"
    p.write_text(p.read_text().replace("y,a,b,0,0.5,0,0,0,0,0,0", "y,a,b,0,0.5,0,0,0,yes,0,0"))
    with pytest.raises(AblationError, match=r"predictions.csv:3: hit_ssa@5 is 'yes'"):
        read_predictions(p)
    p.write_text("image,true_address,predicted_address,correct\nx,a,b,1\n")
    with pytest.raises(AblationError, match="no column hit_ssa@1"):
        read_predictions(p)


def test_paired_interval_is_the_image_bootstrap_when_seeds_agree():
    """Same per-image difference at every seed: the seed part is 0 and the interval is the paired
    image bootstrap, +-1.96 sqrt(var(x)/N). Resampling the two rows' images independently (a lost
    pairing) would give a far wider interval: here the reference is right on half the images and the
    row on those and 40 more, so unpaired the variance is ~var(a)+var(b), ten times larger."""
    n = 800
    ref = np.zeros(n, bool)
    ref[:400] = True
    row = ref.copy()
    row[400:440] = True
    runs_ref = {s: seed_run(ref) for s in (0, 1, 2)}
    runs_row = {s: seed_run(row) for s in (0, 1, 2)}
    d = paired_difference(runs_row, runs_ref, "ssa@1", n_boot=4000)
    x = 100.0 * (row.astype(float) - ref)
    se = x.std(ddof=0) / np.sqrt(n)
    assert d.estimate == pytest.approx(5.0)
    assert d.se_seeds == 0 and d.seeds == [0, 1, 2]
    assert d.se_images == pytest.approx(se, rel=0.08)
    assert d.low == pytest.approx(5.0 - 1.96 * se, abs=0.15)
    assert d.high == pytest.approx(5.0 + 1.96 * se, abs=0.15)
    unpaired = np.sqrt((100 * ref).var() / n + (100 * row).var() / n)
    assert d.high - d.low < 0.5 * 2 * 1.96 * unpaired


def test_pairing_is_by_seed_and_seed_spread_uses_student_t():
    """The reference varies a lot from seed to seed and the row follows it (+5 points at seed 0 and 1,
    +2 at seed 2): paired by seed the differences are 5, 5, 2. Pairing seeds in another order would
    give differences near -25 / +30. The seed part of the interval uses t at about 2 degrees of freedom."""
    n = 1000
    base = {0: 100, 1: 400, 2: 700}          # correct images of the reference per seed
    gain = {0: 50, 1: 50, 2: 20}
    runs_ref, runs_row = {}, {}
    for s in base:
        ref = np.zeros(n, bool)
        ref[:base[s]] = True
        row = ref.copy()
        row[base[s]:base[s] + gain[s]] = True
        runs_ref[s], runs_row[s] = seed_run(ref), seed_run(row)
    runs_row[7] = seed_run(np.ones(n, bool))  # a seed the reference lacks is left out
    d = paired_difference(runs_row, runs_ref, "sa@5", n_boot=2000)
    assert d.seeds == [0, 1, 2]
    assert d.per_seed == pytest.approx([5.0, 5.0, 2.0])
    assert d.estimate == pytest.approx(4.0)
    assert d.se_seeds == pytest.approx(np.std([5, 5, 2], ddof=1) / np.sqrt(3))
    half = (d.high - d.low) / 2
    total_se = np.hypot(d.se_seeds, d.se_images)
    assert 2.0 < d.dof < 4.0                      # Welch-Satterthwaite: the seed part dominates
    assert half == pytest.approx(stats.t.ppf(0.975, d.dof) * total_se)
    assert 0 < d.low < 1.0                        # with 1.96 the low end would be about 1.9


def test_different_test_images_are_refused():
    a = seed_run(np.ones(5, bool))
    b = SeedRun({}, np.array(list("abcde")), a.hits)
    with pytest.raises(AblationError, match="different test images"):
        paired_difference({0: a}, {0: b}, "ssa@1")


def test_table_reports_mean_std_and_paired_rows(tmp_path):
    n = 400
    ids = [f"img{i:04d}" for i in range(n)]
    for s, k in enumerate((100, 110, 120)):
        ref = np.zeros(n, bool)
        ref[:k] = True
        row = ref.copy()
        row[k:k + 40] = True
        write_run(tmp_path / "address" / f"seed{s}" / "eval", ids, ref, shuffle_seed=s)
        write_run(tmp_path / "all" / f"seed{s}" / "eval", ids, row)
    assert sorted(load_row(tmp_path, "all")) == [0, 1, 2]
    text = table(tmp_path, n_boot=500)
    assert "| address | alpha=1 | 3 | 27.5 +- 2.5 | 27.5 +- 2.5 | 27.5 +- 2.5 | 27.5 +- 2.5 | 77.66 | 83.66 |" in text
    assert "| all | alpha=1, beta=0.2, gamma=0.8 | 3 | 37.5 +- 2.5 |" in text
    assert "| caption | beta=0.2 | 0 | (not run)" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("| all - address |"))
    assert "| 3 | +10.0 [" in line and line.endswith("| +2.73 / +2.66 | better |")
    import shutil
    for s in (1, 2):
        shutil.rmtree(tmp_path / "all" / f"seed{s}")
    line = next(ln for ln in table(tmp_path, n_boot=200).splitlines() if ln.startswith("| all - address |"))
    assert line.endswith("| one seed: no verdict |")          # no seed spread from one seed


FAKE_PYTHON = r'''#!/usr/bin/env bash
# stands in for python: records each call; "trains" by writing train_summary.json, "evaluates" by
# writing a predictions.csv with the hit columns
echo "$* threads=$OMP_NUM_THREADS" >> "$CALLS"
out=""; run=""
while [[ $# -gt 0 ]]; do
  case "$1" in --out) out=$2; shift 2 ;; --run) run=$2; shift 2 ;; *) shift ;; esac
done
case "$CALLS_MODE" in fail-caption) [[ "$out" == *"/caption/"* ]] && exit 3 ;; esac
if [[ -n "$run" ]]; then mkdir -p "$out"; echo "image,hit_ssa@1,hit_ssa@5,hit_sa@1,hit_sa@5" > "$out/predictions.csv"
elif [[ -n "$out" ]]; then mkdir -p "$out"; echo '{}' > "$out/train_summary.json"; fi
'''


def _run_script(tmp_path, *args, mode=""):
    import os
    import subprocess
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "meta.json").write_text("{}")
    calls = tmp_path / "calls.txt"
    calls.write_text("")
    env = {**os.environ, "PYTHON": str(fake), "DATA": str(data), "OUT": str(tmp_path / "abl"),
           "CALLS": str(calls), "CALLS_MODE": mode}
    proc = subprocess.run(["bash", str(root / "scripts" / "ablate_addressclip.sh"), *args],
                          env=env, capture_output=True, text=True, timeout=120)
    return proc, calls.read_text().splitlines()


def test_script_runs_every_row_and_seed_in_parallel_and_resumes(tmp_path):
    proc, calls = _run_script(tmp_path, "--seeds", "0 1", "--jobs", "2", "--epochs", "2")
    assert proc.returncode == 0, proc.stderr
    trains = [c for c in calls if c.startswith("-m addressclip.train")]
    assert len(trains) == 10 and all("--epochs 2" in c and "threads=1" in c for c in trains)
    for name in ("address", "caption", "address+caption", "address+geography", "all"):
        for seed in (0, 1):
            assert any(f"/abl/{name}/seed{seed} --seed {seed} " in c for c in trains), (name, seed)
    assert sum(c.startswith("-m addressclip.evaluate") for c in calls) == 10
    assert calls[-1].startswith("-m addressclip.ablation")
    # a second invocation trains and evaluates nothing again; a deleted run is redone alone
    import shutil
    shutil.rmtree(tmp_path / "abl" / "all" / "seed1")
    proc, calls = _run_script(tmp_path, "--seeds", "0 1")
    assert proc.returncode == 0, proc.stderr
    redone = [c for c in calls if not c.startswith("-m addressclip.ablation")]
    assert len(redone) == 2 and all("/abl/all/seed1" in c for c in redone)
    assert "--resume" not in redone[0]
    # a run stopped after a checkpoint continues from it instead of starting over
    run = tmp_path / "abl" / "caption" / "seed0"
    (run / "train_summary.json").unlink()
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "latest.json").write_text('{"checkpoint": "step_000090"}')
    proc, calls = _run_script(tmp_path, "--seeds", "0 1")
    assert proc.returncode == 0, proc.stderr
    trains = [c for c in calls if c.startswith("-m addressclip.train")]
    assert len(trains) == 1 and "/abl/caption/seed0 " in trains[0] and "--resume latest" in trains[0]
    assert (run / "checkpoints" / "latest.json").is_file()      # not deleted


def test_script_reports_a_failed_run_and_keeps_the_others(tmp_path):
    proc, calls = _run_script(tmp_path, "--seeds", "0", mode="fail-caption")
    assert proc.returncode != 0
    assert "caption seed 0: FAILED" in proc.stderr
    assert (tmp_path / "abl" / "all" / "seed0" / "train_summary.json").is_file()
    assert not any(c.startswith("-m addressclip.ablation") for c in calls)


def test_script_rows_are_the_registry_rows():
    """scripts/ablate_addressclip.sh lists the rows that ``--print_rows`` builds from the loss registry."""
    import re
    from pathlib import Path

    from addressclip.ablation import ROW_FLAGS
    script = (Path(__file__).resolve().parents[2] / "scripts" / "ablate_addressclip.sh").read_text()
    listed = re.search(r"^ROWS=\(\n(.*?)^\)", script, re.M | re.S).group(1)
    rows = [" ".join(line.strip().strip('"').split()) for line in listed.splitlines()]
    assert rows == [f"{name} {flags}" for name, flags in ROW_FLAGS.items()]
