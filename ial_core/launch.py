"""How a distributed trainer is started on this machine: the one launch recipe.

GPUs: one process per GPU. CPUs: one single-threaded process per core, because several threads
per process oversubscribe a small machine, trained with ``--use_cpu True`` (the Trainer's CPU
device and process groups) and no pinned memory. Two launchers start the processes:
``torch.distributed.run`` (torchrun) and DeepSpeed's ``deepspeed.launcher.runner``, which on CPU
also needs ``DS_ACCELERATOR=cpu``. Callers build the command with :func:`launch_command`; shell
scripts exec ``python -m ial_core.launch [LAUNCH FLAGS] -- TRAINER ARGS``, which adds the device
flags in front of the trainer's arguments (so the trainer's own flags override them) and then
replaces itself with the launcher.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass

from ial_core.config import option, parse_config

LAUNCHERS = ("torchrun", "deepspeed")
CPU_DEVICE_FLAGS = ("--use_cpu", "True", "--dataloader_pin_memory", "False")
# On CPU at most this many processes by default: beyond two cores a small model gains little.
MAX_DEFAULT_CPU_PROCESSES = 2


def free_port() -> int:
    """A TCP port that is free on this machine now (the rendezvous port of one launch)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cuda_devices() -> int:
    """The number of usable CUDA GPUs (0 without CUDA)."""
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def default_processes(gpus: int) -> int:
    """One process per GPU, else one per CPU core (at most :data:`MAX_DEFAULT_CPU_PROCESSES`)."""
    return gpus if gpus else max(1, min(MAX_DEFAULT_CPU_PROCESSES, os.cpu_count() or 1))


def device_flags(on_gpu: bool, *, bf16: bool = False, activation_checkpointing: bool = False) -> list[str]:
    """The trainer flags for the device: CPU training flags, or on GPU the chosen memory savers."""
    if not on_gpu:
        return list(CPU_DEVICE_FLAGS)
    return [*(["--bf16", "True"] if bf16 else []),
            *(["--activation_checkpointing", "True"] if activation_checkpointing else [])]


def device_env(on_gpu: bool, launcher: str = "torchrun") -> dict[str, str]:
    """The environment the launched processes need on this device (nothing extra on GPU)."""
    if on_gpu:
        return {}
    return {"OMP_NUM_THREADS": "1", **({"DS_ACCELERATOR": "cpu"} if launcher == "deepspeed" else {})}


def launch_command(module: str, args: list[str], *, nproc: int, launcher: str = "torchrun",
                   master_port: int | None = None, python: str = sys.executable) -> list[str]:
    """The argv that starts ``nproc`` processes of ``python -m module ARGS``.

    torchrun with one process runs the module directly (no rendezvous needed); DeepSpeed's
    launcher is always used when asked for, since the trainer then reads its launch environment.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")
    port = str(master_port if master_port is not None else free_port())
    if launcher == "deepspeed":
        return [python, "-m", "deepspeed.launcher.runner", "--num_gpus", str(nproc),
                "--master_port", port, "--module", module, *args]
    if nproc == 1:
        return [python, "-m", module, *args]
    return [python, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            "--master_port", port, "-m", module, *args]


@dataclass
class LaunchConfig:
    module: str = option("llava_ial.train", "the trainer module to start (python -m MODULE)")
    launcher: str = option("torchrun", "torchrun (torch.distributed.run) or deepspeed "
                                       "(deepspeed.launcher.runner)")
    nproc: int | None = option(None, "processes (none: one per GPU, else one single-threaded "
                                     "process per CPU core, at most 2)")
    master_port: int | None = option(None, "rendezvous port (none: a free one)")
    bf16: bool = option(False, "on GPU, train in bf16 (--bf16 True)")
    activation_checkpointing: bool = option(False, "on GPU, recompute activations in the backward "
                                                   "pass (--activation_checkpointing True)")

    def __post_init__(self):
        if self.launcher not in LAUNCHERS:
            raise ValueError(f"--launcher must be one of {LAUNCHERS}, got {self.launcher!r}")


def main(argv: list[str] | None = None) -> None:
    """Parse the launch flags (before ``--``), then exec the launcher with the trainer's arguments
    (after ``--``), the device flags in front of them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    own, trainer = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv \
        else (argv, [])
    cfg = parse_config(LaunchConfig, own, prog="python -m ial_core.launch",
                       description=__doc__.split("\n")[0])
    gpus = cuda_devices()
    for name, value in device_env(bool(gpus), cfg.launcher).items():
        if name != "OMP_NUM_THREADS" or not os.environ.get(name):   # a thread count given wins
            os.environ[name] = value
    flags = device_flags(bool(gpus), bf16=cfg.bf16, activation_checkpointing=cfg.activation_checkpointing)
    command = launch_command(cfg.module, [*flags, *trainer], nproc=cfg.nproc or default_processes(gpus),
                             launcher=cfg.launcher, master_port=cfg.master_port)
    sys.stdout.flush()
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
