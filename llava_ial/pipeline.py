"""Stage two end to end on a CPU: ``python -m llava_ial.pipeline --vision VISION_DIR``.

Steps, each into ``--out`` (default ``runs/helsinki/llava_ial``):

1. conversations from the dataset (``data_gen.conversations``) -> ``conversations/``;
2. a tiny causal LM from the registry with a tokenizer trained on them -> ``lm/``
   (or ``--lm DIR``: any causal-LM directory, e.g. ``python -m llava_ial.smollm2``'s);
3. compose LLaVA-IAL on the AddressCLIP vision tower -> ``tuned/base``; with ``--untuned_baseline``
   also on a randomly initialised tower of the same shape -> ``untuned/base``;
4. pretrain the projector, then fine-tune (``recipes/tiny_*.yaml``), each launched as
   ``torch.distributed.run`` with one single-threaded process per core (on 2 shared cores this is
   several times faster than one process with two threads);
5. evaluate street/district accuracy on the test split -> ``report.json`` and ``report.md``, with the
   majority baseline and, given ``--stage_one_metrics``, AddressCLIP's SA@1.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from data_gen.cli import parse_config

RECIPES = Path(__file__).with_name("recipes")


@dataclass
class PipelineConfig:
    vision: Path = field(default=Path("runs/helsinki/addressclip/hf_vision"), metadata={
        "help": "AddressCLIP vision tower (python -m addressclip.export)"})
    data: Path = field(default=Path("runs/helsinki/data"), metadata={"help": "dataset folder"})
    out: Path = field(default=Path("runs/helsinki/llava_ial"), metadata={"help": "output folder"})
    lm: str = field(default="llama-tiny", metadata={
        "help": "tiny LM registry name/file (trained from scratch here) or a causal-LM directory"})
    pretrain_config: Path = field(default=RECIPES / "tiny_pretrain.yaml", metadata={
        "help": "llava_ial.train settings of the pretrain stage"})
    finetune_config: Path = field(default=RECIPES / "tiny_finetune.yaml", metadata={
        "help": "llava_ial.train settings of the finetune stage"})
    compose_config: Path | None = field(default=None, metadata={
        "help": "YAML of llava_ial.compose settings (e.g. vision_feature_layer: -1, "
                "vision_feature_select_strategy: full); none: compose's defaults (-2, default)"})
    untuned_baseline: bool = field(default=True, metadata={
        "help": "also train on a randomly initialised vision tower and report it beside"})
    nproc: int | None = field(default=None, metadata={
        "help": "training processes (None: one per GPU, else one per CPU core, at most 2)"})
    eval_split: str = field(default="test", metadata={"help": "split to evaluate"})
    eval_limit: int | None = field(default=None, metadata={"help": "evaluate N evenly spaced images"})
    stage_one_metrics: Path | None = field(default=None, metadata={
        "help": "AddressCLIP metrics.json (python -m addressclip.evaluate) to report SA@1 beside"})
    seed: int = field(default=0, metadata={"help": "seed of conversations, LM and projector"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_nproc() -> int:
    import torch
    if torch.cuda.is_available():
        return torch.cuda.device_count()
    return max(1, min(2, os.cpu_count() or 1))


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def launch_train(args: list[str], nproc: int, log_path: Path) -> dict:
    """Run ``llava_ial.train``: in this process when ``nproc`` is 1, else as ``nproc`` processes
    (``torch.distributed.run``) with output in ``log_path``. Returns wall and CPU seconds (on a
    shared machine the CPU time, divided by the cores, is what the run would take alone)."""
    import torch
    start, cpu_start = time.perf_counter(), cpu_seconds()
    cpu = not torch.cuda.is_available()
    extra = ["--use_cpu", "True", "--dataloader_pin_memory", "False"] if cpu else []
    if nproc == 1:
        from llava_ial import train
        train.train(args + extra)
    else:
        env = dict(os.environ)
        if cpu:
            env.setdefault("OMP_NUM_THREADS", "1")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--master_port", str(free_port()), "-m", "llava_ial.train", *args, *extra]
        with open(log_path, "w", encoding="utf-8") as log:
            proc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise RuntimeError(f"training failed (exit {proc.returncode}); log {log_path}:\n{tail}")
    return {"wall_s": round(time.perf_counter() - start, 1),
            "cpu_s": round(cpu_seconds() - cpu_start, 1)}


def compose_settings(path: Path | None) -> dict:
    """Settings for :class:`ComposeConfig` from YAML (paths and seed come from the pipeline)."""
    from dataclasses import fields
    from llava_ial.compose import ComposeConfig
    if path is None or str(path).lower() == "none":
        return {}
    values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    allowed = {f.name for f in fields(ComposeConfig)} - {"vision", "lm", "out", "seed",
                                                         "random_vision_init"}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(f"{path}: unknown compose settings {unknown} (allowed: {sorted(allowed)})")
    return values


def compose_base(cfg: PipelineConfig, lm_dir: Path, out: Path, random_vision: bool) -> Path:
    from llava_ial.compose import ComposeConfig, compose_to_dir
    return compose_to_dir(ComposeConfig(vision=cfg.vision, lm=lm_dir, out=out, seed=cfg.seed,
                                        random_vision_init=random_vision,
                                        **compose_settings(cfg.compose_config)))


def train_variant(cfg: PipelineConfig, name: str, lm_dir: Path, conversations: Path, nproc: int,
                  random_vision: bool) -> dict:
    """Compose, pretrain, fine-tune and evaluate one variant (tuned or untuned tower)."""
    from llava_ial.evaluate import evaluate, write_outputs
    root = cfg.out / name
    root.mkdir(parents=True, exist_ok=True)
    base = compose_base(cfg, lm_dir, root / "base", random_vision)
    seconds = {}
    seconds["pretrain"] = launch_train(
        ["--config", str(cfg.pretrain_config), "--model", str(base), "--conversations",
         str(conversations / "pretrain_train.json"), "--output_dir", str(root / "pretrain"),
         "--seed", str(cfg.seed)], nproc, root / "pretrain.log")
    seconds["finetune"] = launch_train(
        ["--config", str(cfg.finetune_config), "--model", str(base), "--pretrained_projector",
         str(root / "pretrain" / "model"), "--conversations",
         str(conversations / "instruct_train.json"), "--output_dir", str(root / "finetune"),
         "--seed", str(cfg.seed)], nproc, root / "finetune.log")
    summaries = {stage: json.loads((root / stage / "train_summary.json").read_text())
                 for stage in ("pretrain", "finetune")}
    result = evaluate(root / "finetune" / "model", cfg.data, cfg.eval_split, limit=cfg.eval_limit)
    write_outputs(result, root / "eval")
    return {"street_accuracy": result["street_accuracy"],
            "district_accuracy": result["district_accuracy"],
            "n_images": result["n_images"], "majority": result["majority"],
            "seconds": seconds,
            "loss": {stage: {"first": s["first_logged_loss"], "last": s["last_logged_loss"],
                             "steps": s["global_step"]} for stage, s in summaries.items()}}


def report_markdown(report: dict) -> str:
    rows = ["| model | street accuracy | district accuracy | pretrain + finetune time |",
            "|---|---|---|---|"]
    for name, label in (("tuned", "LLaVA-IAL, AddressCLIP tower"),
                        ("untuned", "LLaVA-IAL, untrained tower")):
        if name in report:
            r = report[name]
            t = r["seconds"]
            rows.append(f"| {label} | {r['street_accuracy']:.1f}% | {r['district_accuracy']:.1f}% | "
                        f"{t['pretrain']['wall_s']:.0f} s + {t['finetune']['wall_s']:.0f} s wall, "
                        f"{t['pretrain']['cpu_s'] + t['finetune']['cpu_s']:.0f} CPU-s |")
    m = report["tuned"]["majority"]
    rows.append(f"| majority baseline | {m['street_accuracy']:.1f}% ({m['street']}) | "
                f"{m['district_accuracy']:.1f}% ({m['district']}) | |")
    if "stage_one_sa@1" in report:
        rows.append(f"| AddressCLIP (stage one) SA@1 | {report['stage_one_sa@1']:.1f}% | | |")
    return "\n".join(rows) + "\n"


def run(cfg: PipelineConfig) -> dict:
    from data_gen.conversations import ConversationConfig, write_conversations
    from llava_ial.tiny_lm import build_tiny_lm_dir
    import torch
    if not torch.cuda.is_available():
        torch.set_num_threads(1)          # evaluation in this process, beside nothing else
    cfg.out.mkdir(parents=True, exist_ok=True)
    nproc = cfg.nproc or default_nproc()
    conversations = write_conversations(ConversationConfig(data=cfg.data, out=cfg.out / "conversations",
                                                           seed=cfg.seed))
    lm_dir = Path(cfg.lm) if Path(cfg.lm).is_dir() else \
        build_tiny_lm_dir(cfg.lm, conversations, cfg.out / "lm", seed=cfg.seed)
    report = {"nproc": nproc, "lm": str(cfg.lm), "vision": str(cfg.vision),
              "compose": compose_settings(cfg.compose_config)}
    variants = [("tuned", False)] + ([("untuned", True)] if cfg.untuned_baseline else [])
    for name, random_vision in variants:
        report[name] = train_variant(cfg, name, lm_dir, conversations, nproc, random_vision)
        print(f"{name}: street {report[name]['street_accuracy']:.1f}%, district "
              f"{report[name]['district_accuracy']:.1f}%, {report[name]['seconds']}", flush=True)
    if cfg.stage_one_metrics:
        report["stage_one_sa@1"] = json.loads(Path(cfg.stage_one_metrics).read_text())["sa@1"]
    (cfg.out / "report.json").write_text(json.dumps(report, indent=2))
    (cfg.out / "report.md").write_text(report_markdown(report))
    return report


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(PipelineConfig, argv, description=__doc__.split("\n")[0])
    report = run(cfg)
    print(report_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
