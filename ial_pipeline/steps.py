"""The pipeline's steps: what each reads and writes, and the command that runs it alone.

Every step is one of the toolkit's own commands run as a child process, so a step run here is
exactly the step a user would run by hand (the summary prints those commands), each starts with
its own memory and thread settings, and a failure names one command and one log file.

``resume(cfg)`` gives the command for a step that was interrupted on the same inputs: stage one
continues from its last checkpoint, the fine-tuning from its last Trainer checkpoint, the QA step
from the answers already stored, and the dataset build reuses a finished folder by itself.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from ial_core.launch import cuda_devices, default_processes, device_env, device_flags, launch_command
from ial_pipeline.config import REAL_LMS, PipelineConfig

PY = sys.executable
# The question sets LLaVA-IAL is also scored on, beyond the design question (data_gen.questions);
# "poster" is the question the AddressCLIP poster asked general multimodal models.
QUESTION_SETS = {"poster": "the poster's question",
                 "heldout": "address phrasings training never sees",
                 "heldout_unanswerable": "unanswerable questions training never sees"}


@dataclass(frozen=True)
class Paths:
    """Where every artefact of one pipeline root lives."""
    root: Path
    data: Path

    @classmethod
    def of(cls, cfg: PipelineConfig) -> Paths:
        return cls(Path(cfg.root), Path(cfg.data) if cfg.data else Path(cfg.root) / "data")

    @property
    def stage1(self) -> Path:
        return self.root / "addressclip"

    @property
    def stage1_eval(self) -> Path:
        return self.stage1 / "eval"

    @property
    def candidates(self) -> Path:
        """AddressCLIP's top streets per image (``--candidates K``)."""
        return self.stage1 / "candidates.json"

    @property
    def vision(self) -> Path:
        return self.stage1 / "hf_vision"

    @property
    def stage2(self) -> Path:
        return self.root / "llava_ial"

    @property
    def conversations(self) -> Path:
        return self.stage2 / "conversations"

    @property
    def lm(self) -> Path:
        return self.stage2 / "lm"

    @property
    def base(self) -> Path:
        return self.stage2 / "base"

    @property
    def pretrain(self) -> Path:
        return self.stage2 / "pretrain"

    @property
    def finetune(self) -> Path:
        return self.stage2 / "finetune"

    @property
    def export(self) -> Path:
        return self.stage2 / "export"

    @property
    def untuned(self) -> Path:
        """Stage two on a randomly initialised tower (``--untuned_baseline``): base/, pretrain/, ..."""
        return self.stage2 / "untuned"

    @property
    def qa(self) -> Path:
        return self.root / "qa_eval"

    def qa_questions(self, name: str) -> Path:
        """LLaVA-IAL scored on one named question set (``eval.qa_eval --prompts NAME``)."""
        return self.root / f"qa_eval_{name}"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def state(self) -> Path:
        """Where the pipeline keeps its own records of which step finished when."""
        return self.root / ".pipeline"


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    deps: tuple[str, ...]
    product: Path                      # exists once the step has finished
    outputs: tuple[Path, ...]          # removed before the step reruns on changed inputs
    command: Callable[[bool], list[str]]   # resume -> argv
    env: dict[str, str] = field(default_factory=dict)
    resumable: bool = False            # the command can continue an interrupted run


def training_launch(cfg: PipelineConfig) -> tuple[list[str], list[str], dict[str, str]]:
    """How stage two is launched here (:mod:`ial_core.launch`): the prefix, the device flags and
    the environment. The pipeline leaves GPU precision and activation checkpointing to the recipes.
    """
    gpus = cuda_devices()
    nproc = cfg.nproc or default_processes(gpus)
    return (launch_command("llava_ial.train", [], nproc=nproc, python=PY),
            device_flags(bool(gpus)), device_env(bool(gpus)))


def build_steps(cfg: PipelineConfig) -> list[Step]:
    """The steps in order. With ``--data DIR`` there is no build step: the folder is an input."""
    p = Paths.of(cfg)
    seed = str(cfg.seed)
    launch, device, train_env = training_launch(cfg)
    stage1_config = ["--config", str(cfg.stage1_config)] if cfg.stage1_config else []
    data_config = ["--config", str(cfg.data_config)] if cfg.data_config else []
    pretrain_recipe, finetune_recipe = cfg.pretrain_config, cfg.finetune_config
    if cfg.lm in REAL_LMS:           # its own recipes, unless others were given
        defaults = {f.name: f.default for f in fields(PipelineConfig)}
        real = REAL_LMS[cfg.lm]
        pretrain_recipe = real[0] if pretrain_recipe == defaults["pretrain_config"] else pretrain_recipe
        finetune_recipe = real[1] if finetune_recipe == defaults["finetune_config"] else finetune_recipe

    def stage1_train(resume: bool) -> list[str]:
        can_resume = (p.stage1 / "checkpoints" / "latest.json").is_file()
        if resume and not can_resume and p.stage1.exists():
            shutil.rmtree(p.stage1)        # stopped before its first checkpoint: nothing to keep
        cont = ["--resume", "latest"] if resume and can_resume else []
        return [PY, "-m", "addressclip.train", *stage1_config, "--data", str(p.data), "--out",
                str(p.stage1), "--seed", seed, *cont]

    def llava_train(recipe: Path, data: str, out: Path, extra: list[str], base: Path = p.base):
        def command(resume: bool) -> list[str]:
            cont = ["--resume_from_checkpoint", "latest"] if resume else []
            return [*launch, "--config", str(recipe), "--model", str(base), *extra,
                    "--conversations", str(p.conversations / data), "--output_dir", str(out),
                    "--seed", seed, *device, *cont]
        return command

    cand_dep = ("stage1_candidates",) if cfg.candidates else ()
    cand_arg = ["--candidates", str(p.candidates)] if cfg.candidates else []
    steps = []
    if cfg.data is None:
        # Nothing to remove before a rerun: the builder itself reuses a folder built with the same
        # settings and refuses to replace one it did not write.
        steps.append(Step("data", "build the embedded Helsinki dataset", (), p.data / "meta.json",
                          (), lambda resume: [PY, "-m", "data_gen.build", *data_config, "--out",
                                              str(p.data), "--seed", seed], resumable=True))
    data_dep = ("data",) if cfg.data is None else ()
    steps += [
        Step("stage1_train", "stage one: train AddressCLIP", data_dep,
             p.stage1 / "train_summary.json", (p.stage1,), stage1_train, resumable=True),
        Step("stage1_eval", "stage one: evaluate (test split, zero-shot beside)", ("stage1_train",),
             p.stage1_eval / "metrics.json", (p.stage1_eval,),
             lambda resume: [PY, "-m", "addressclip.evaluate", "--run", str(p.stage1)]),
        Step("stage1_export", "stage one: export the vision tower (HF CLIPVisionModel)",
             ("stage1_train",), p.vision / "config.json", (p.vision,),
             lambda resume: [PY, "-m", "addressclip.export", "--run", str(p.stage1)]),
        *([Step("stage1_candidates", f"stage one: top {cfg.candidates} streets per image",
                ("stage1_train",), p.candidates, (p.candidates,),
                lambda resume: [PY, "-m", "addressclip.candidates", "--run", str(p.stage1),
                                "--data", str(p.data), "--k", str(cfg.candidates), "--out",
                                str(p.candidates)])] if cfg.candidates else []),
        Step("conversations", "LLaVA conversations from the dataset",
             (*data_dep, *cand_dep), p.conversations / "meta.json", (p.conversations,),
             lambda resume: [PY, "-m", "data_gen.conversations", "--data", str(p.data), "--out",
                             str(p.conversations), "--seed", seed, *cand_arg]),
        Step("stage2_lm", f"stage two: language model ({cfg.lm})", ("conversations",),
             p.lm / "config.json", (p.lm,),
             lambda resume: [PY, "-m", "llava_ial.smollm2", "--out", str(p.lm)]
             if cfg.lm == "smollm2" else
             [PY, "-m", "llava_ial.tiny_lm", "--name", cfg.lm, "--conversations",
              str(p.conversations), "--out", str(p.lm), "--seed", seed]),
        Step("stage2_compose", "stage two: compose vision tower + projector + LM",
             ("stage1_export", "stage2_lm"), p.base / "llava_ial.json", (p.base,),
             lambda resume: [PY, "-m", "llava_ial.compose", "--vision", str(p.vision), "--lm",
                             str(lm_dir(cfg, p)), "--out", str(p.base), "--seed", seed]),
        Step("stage2_pretrain", "stage two: pretrain the projector", ("stage2_compose",),
             p.pretrain / "model" / "llava_ial.json", (p.pretrain,),
             llava_train(pretrain_recipe, "pretrain_train.json", p.pretrain, []),
             train_env, resumable=True),
        Step("stage2_finetune", "stage two: fine-tune projector + LM", ("stage2_pretrain",),
             p.finetune / "model" / "llava_ial.json", (p.finetune,),
             llava_train(finetune_recipe, "instruct_train.json", p.finetune,
                         ["--pretrained_projector", str(p.pretrain / "model")]),
             train_env, resumable=True),
        Step("stage2_export", "stage two: export one servable HF LLaVA folder", ("stage2_finetune",),
             p.export / "llava_ial.json", (p.export,),
             lambda resume: [PY, "-m", "llava_ial.export", "--model", str(p.finetune / "model"),
                             "--out", str(p.export)]),
    ]
    untuned_run, untuned_dep = [], ()
    if cfg.untuned_baseline:
        u = p.untuned
        steps += [
            Step("untuned_compose", "baseline: compose on a randomly initialised vision tower",
                 ("stage1_export", "stage2_lm"), u / "base" / "llava_ial.json", (u / "base",),
                 lambda resume: [PY, "-m", "llava_ial.compose", "--vision", str(p.vision), "--lm",
                                 str(lm_dir(cfg, p)), "--out", str(u / "base"), "--seed", seed,
                                 "--random_vision_init", "True"]),
            Step("untuned_pretrain", "baseline: pretrain its projector", ("untuned_compose",),
                 u / "pretrain" / "model" / "llava_ial.json", (u / "pretrain",),
                 llava_train(pretrain_recipe, "pretrain_train.json", u / "pretrain", [],
                             u / "base"), train_env, resumable=True),
            Step("untuned_finetune", "baseline: fine-tune it", ("untuned_pretrain",),
                 u / "finetune" / "model" / "llava_ial.json", (u / "finetune",),
                 llava_train(finetune_recipe, "instruct_train.json", u / "finetune",
                             ["--pretrained_projector", str(u / "pretrain" / "model")],
                             u / "base"), train_env, resumable=True),
            Step("untuned_export", "baseline: export it", ("untuned_finetune",),
                 u / "export" / "llava_ial.json", (u / "export",),
                 lambda resume: [PY, "-m", "llava_ial.export", "--model",
                                 str(u / "finetune" / "model"), "--out", str(u / "export")]),
        ]
        untuned_run, untuned_dep = ["--run", f"llava-ial-untuned=hf:{u / 'export'}"], \
            ("untuned_export",)
    limit = ["--limit", str(cfg.qa_limit)] if cfg.qa_limit else []

    def qa_eval(out: Path, *args: str):
        return lambda resume: [PY, "-m", "eval.qa_eval", "--data", str(p.data), "--split", "test",
                               *args, *cand_arg, "--batch_size", str(cfg.qa_batch_size), "--seed",
                               seed, *limit, "--out", str(out)]

    steps.append(Step("qa_eval", "QA evaluation: LLaVA-IAL, AddressCLIP retrieval, baselines",
                      ("stage2_export", "stage1_train", *untuned_dep, *data_dep), p.qa / "report.json",
                      (p.qa,), qa_eval(p.qa, "--run", f"llava-ial=hf:{p.export}", *untuned_run,
                                       "--run", f"addressclip=addressclip:{p.stage1}"),
                      resumable=True))
    for name, what in QUESTION_SETS.items():
        out = p.qa_questions(name)
        steps.append(Step(f"qa_{name}", f"QA evaluation of LLaVA-IAL on {what}",
                          ("stage2_export", *data_dep), out / "report.json", (out,),
                          qa_eval(out, "--run", f"llava-ial=hf:{p.export}", "--prompts", name,
                                  "--baselines", "False"), resumable=True))
    if Path(cfg.lm).is_dir():      # a given causal-LM folder: nothing to build
        steps = [s for s in steps if s.name != "stage2_lm"]
        steps = [s if s.name not in ("stage2_compose", "untuned_compose") else
                 replace(s, deps=("stage1_export",)) for s in steps]
    return steps


def lm_dir(cfg: PipelineConfig, p: Paths) -> Path:
    return Path(cfg.lm) if Path(cfg.lm).is_dir() else p.lm
