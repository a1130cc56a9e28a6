"""Run a training entry point as ``python -m MODULE ARGS...`` would, but park it in the middle of
writing the checkpoint of step STEP, so that a test can ``kill -9`` it at a known, realistic moment:
mid-epoch, with earlier checkpoints complete on disk and unsaved steps since the last one.

    python tests/helpers/park_training.py MARKER STEP MODULE [ARGS...]

When the process parks it writes MARKER and sleeps until killed (at most 15 minutes). Where it parks:

- ``addressclip.train``: after the weights of step STEP are written into the checkpoint's temporary
  folder, before its training state (the folder is never published);
- ``llava_ial.train`` (HF Trainer): after ``checkpoint-STEP/model.safetensors`` is written, before the
  optimizer, RNG and trainer state (the Trainer writes in place, so a partial ``checkpoint-STEP/``
  stays behind for the resume to reject).

Only the save is intercepted; the training itself is the unmodified module run with ``runpy``.
"""

from __future__ import annotations

import os
import runpy
import sys
import time
from pathlib import Path

PARK_LIMIT_S = 900     # if the test itself died and never kills us, do not linger forever


def park(marker: Path) -> None:
    marker.write_text("parked\n")
    time.sleep(PARK_LIMIT_S)
    os._exit(3)


def park_addressclip(marker: Path, step: int) -> None:
    from addressclip import checkpoint as ckpt
    write_model_files = ckpt.write_model_files

    def parking_write_model_files(directory, clip, config):
        write_model_files(directory, clip, config)
        if directory.name.startswith(f".step_{step:06d}.tmp"):
            park(marker)
    ckpt.write_model_files = parking_write_model_files


def park_llava(marker: Path, step: int) -> None:
    from transformers import Trainer
    save_optimizer_and_scheduler = Trainer._save_optimizer_and_scheduler

    def parking_save(self, output_dir):
        if self.state.global_step == step:
            park(marker)
        save_optimizer_and_scheduler(self, output_dir)
    Trainer._save_optimizer_and_scheduler = parking_save


PARKERS = {"addressclip.train": park_addressclip, "llava_ial.train": park_llava}


def main() -> None:
    marker, step, module, *args = sys.argv[1:]
    PARKERS[module](Path(marker), int(step))
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
