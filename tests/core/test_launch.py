"""ial_core.launch: the one launch recipe of the stage-two scripts and the pipeline."""

from __future__ import annotations

import pytest

from ial_core.launch import device_env, device_flags, launch_command, main


def test_device_flags_and_environment():
    assert device_flags(False, bf16=True, activation_checkpointing=True) == [
        "--use_cpu", "True", "--dataloader_pin_memory", "False"]
    assert device_flags(True) == []
    assert device_flags(True, bf16=True, activation_checkpointing=True) == [
        "--bf16", "True", "--activation_checkpointing", "True"]
    assert device_env(False) == {"OMP_NUM_THREADS": "1"}
    assert device_env(False, "deepspeed") == {"OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu"}
    assert device_env(True, "deepspeed") == {}


def test_launch_commands():
    assert launch_command("m", ["--a"], nproc=1, python="py") == ["py", "-m", "m", "--a"]
    assert launch_command("m", ["--a"], nproc=2, master_port=5, python="py") == [
        "py", "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "5",
        "-m", "m", "--a"]
    assert launch_command("m", [], nproc=1, launcher="deepspeed", master_port=5, python="py") == [
        "py", "-m", "deepspeed.launcher.runner", "--num_gpus", "1", "--master_port", "5",
        "--module", "m"]
    with pytest.raises(ValueError, match="launcher"):
        launch_command("m", [], nproc=1, launcher="mpirun")


def test_main_execs_the_launcher_with_device_flags_first(monkeypatch):
    import ial_core.launch as launch
    calls = []
    monkeypatch.setattr(launch, "cuda_devices", lambda: 0)
    monkeypatch.setattr(launch.os, "execv", lambda path, argv: calls.append(argv))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv("DS_ACCELERATOR", raising=False)
    main(["--launcher", "deepspeed", "--nproc", "2", "--master_port", "7", "--bf16", "true", "--",
          "--stage", "finetune"])
    assert calls[0][2:] == ["deepspeed.launcher.runner", "--num_gpus", "2", "--master_port", "7",
                            "--module", "llava_ial.train", "--use_cpu", "True",
                            "--dataloader_pin_memory", "False", "--stage", "finetune"]
    assert launch.os.environ["OMP_NUM_THREADS"] == "3"          # a thread count given wins
    assert launch.os.environ["DS_ACCELERATOR"] == "cpu"
