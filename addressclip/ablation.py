"""Format the loss-ablation table: ``python -m addressclip.ablation RUNS_DIR``.

Reads ``RUNS_DIR/{address,caption,address+caption,address+geography,all}/eval/metrics.json`` (written by
``scripts/ablate_addressclip.sh``) and prints our Top-1/Top-5 SSA and SA next to the paper's Top-1
SSA for the same loss combinations on Pitts-IAL and SF-IAL-Base. The paper fine-tunes pretrained
CLIP ViT-B/16 on real photographs for 100 epochs; these runs train the configured model (by default
the tiny CPU model from random initialisation, for a few epochs) on the configured data. Compare
the ordering of the rows, not the values. The table is also written to ``RUNS_DIR/ablation.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# name -> (loss weights used by the script, paper Top-1 SSA Pitts-IAL, SF-IAL-Base)
ROWS = {
    "address": ("alpha=1", 77.66, 83.66),
    "caption": ("beta=0.2", 69.27, 75.85),
    "address+caption": ("alpha=1, beta=0.2", 79.20, 84.86),
    "address+geography": ("alpha=1, gamma=0.8", 79.27, 85.54),
    "all": ("alpha=1, beta=0.2, gamma=0.8", 80.39, 86.32),
}


def table(runs_dir: Path) -> str:
    lines = ["| losses | weights | SSA@1 | SSA@5 | SA@1 | SA@5 | paper SSA@1 Pitts-IAL | "
             "paper SSA@1 SF-IAL-Base |", "|---|---|---|---|---|---|---|---|"]
    found = {}
    for name, (weights, pitts, sf) in ROWS.items():
        path = runs_dir / name / "eval" / "metrics.json"
        if path.is_file():
            m = json.loads(path.read_text(encoding="utf-8"))
            found[name] = m
            ours = " | ".join(f"{m[k]:.2f}" for k in ("ssa@1", "ssa@5", "sa@1", "sa@5"))
        else:
            ours = " | ".join(["(not run)"] * 4)
        lines.append(f"| {name} | {weights} | {ours} | {pitts:.2f} | {sf:.2f} |")
    if found:
        any_m = next(iter(found.values()))
        zs = any_m.get("zero_shot")
        notes = [f"{any_m['n_images']} {any_m['split']} images of {any_m['dataset']}, "
                 f"{any_m['n_candidates']} candidate addresses (chance SSA@1 "
                 f"{any_m['chance_ssa@1']:.2f}%)."]
        if zs:
            notes.append(f"Zero-shot (the model at step 0): SSA@1 {zs['ssa@1']:.2f}, SA@1 {zs['sa@1']:.2f}.")
        cfg_path = runs_dir / next(iter(found)) / "config.yaml"
        if cfg_path.is_file():
            import yaml
            cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
            notes.append(f"Model {cfg['model']['model']} (pretrained: {cfg['model']['pretrained']}), "
                         f"{cfg['optim']['epochs']} epochs, batch {cfg['optim']['batch_size']}, "
                         f"lr {cfg['optim']['lr']}, seed {cfg['run']['seed']}; one run per row.")
        notes.append("Paper: CLIP ViT-B/16 (OpenAI weights) fine-tuned on real street photos, 100 "
                     "epochs, 8 GPUs. Compare the ordering of the rows, not the values; with one "
                     "seed per row, differences of a point or two are within run-to-run noise.")
        lines += [""] + notes
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m addressclip.ablation", description=__doc__.split("\n")[0])
    p.add_argument("runs_dir", help="folder holding one run directory per loss combination")
    a = p.parse_args(argv)
    text = table(Path(a.runs_dir))
    (Path(a.runs_dir) / "ablation.md").write_text(text, encoding="utf-8")
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
