"""Train AddressCLIP: ``python -m addressclip.train [--out RUN_DIR] [flags | --config FILE.yaml]``.

With no arguments it trains the tiny CPU model (``AddressCLIP-Tiny``) on the embedded Helsinki dataset
(``runs/helsinki/data``, built with ``python -m data_gen.build`` when missing) into
``runs/helsinki/addressclip``. ``torchrun --nproc_per_node N -m addressclip.train ...`` trains with DDP
(gloo on CPU, nccl on GPU); ``--batch-size`` is per process.

One optimizer step, top to bottom: learning rate for this step; ``accum_steps`` micro-steps (forward
under autocast, the three losses over the gathered global batch, backward; DDP synchronises only on
the last); optional gradient clipping; optimizer step; logit scale clamped to [0, ln 100]; timing and
logging; checkpoint and stop checks. After every epoch: validation (SSA/SA on the val split) and an
atomic checkpoint. ``--resume latest`` continues the same run at the same step, optimizer and scaler
state, position in the epoch and RNG state (see :mod:`addressclip.checkpoint`); a damaged latest
checkpoint is reported (naming the file) and the previous complete one is used instead. The process
may be killed at any moment (``kill -9``, preemption): the resumed run ends with the same weights as
an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import open_clip
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from addressclip import checkpoint as ckpt
from addressclip.config import (
    Config,
    ConfigError,
    default_workers,
    load_run_config,
    merge_for_resume,
    parse_args,
)
from addressclip.data import CandidateSet, EpochBatchSampler, IALImageDataset, eval_loader, train_loader
from addressclip.distributed import DistEnv, barrier, broadcast_object, cleanup, init_distributed
from addressclip.evaluate import encode_texts, predict, score
from addressclip.losses import ADDRESS_TOKENS, CAPTION_TOKENS, COORDS, AddressCLIPLoss, LossWeights
from addressclip.model import (
    AddressCLIP,
    CheckpointError,
    apply_locks,
    count_parameters,
    create_clip,
    load_weights,
)
from addressclip.precision import autocast, grad_scaler, resolve_precision
from addressclip.scheduler import lr_at, set_lr
from data_gen.dataset import load_dataset_dir
from ial_core.errors import DataError, exit_2_on
from ial_core.files import write_text

log = logging.getLogger("addressclip.train")


def prepare_dataset(cfg: Config, env: DistEnv):
    """The training dataset; the embedded city is built by the data stage when it is missing."""
    root = cfg.dataset_root
    if cfg.uses_embedded_data and not (root / "meta.json").is_file():
        if env.is_master:
            from data_gen.build import ensure_embedded  # (the builder's imports only when needed)
            log.info("building the embedded dataset in %s (seed %d)", root, cfg.data.build_seed)
            ensure_embedded(root, seed=cfg.data.build_seed)
        barrier()
    return load_dataset_dir(root)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """open_clip's rule: no decay for gains, biases, logit scale and other 1-D parameters."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        exclude = p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
        (no_decay if exclude else decay).append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def make_optimizer(model: torch.nn.Module, cfg: Config, device: torch.device) -> torch.optim.Optimizer:
    o = cfg.optim
    return torch.optim.AdamW(param_groups(model, o.weight_decay), lr=o.lr, betas=(o.beta1, o.beta2),
                             eps=o.eps, fused=device.type in ("cuda", "cpu"))


def batch_losses(model, loss_fn: AddressCLIPLoss, batch: dict, cand_tokens: torch.Tensor,
                 device: torch.device) -> dict[str, torch.Tensor]:
    """Forward one micro-batch and return the loss dict (total and components)."""
    needs = loss_fn.weights.inputs()      # only what the active loss terms use is computed
    images = batch["image"].to(device, non_blocking=True)
    labels = batch["label"].to(device, non_blocking=True)
    addr_tokens = addr_index = cap_tokens = None
    if ADDRESS_TOKENS in needs:  # each distinct address of the batch goes through the text tower once
        uniq, addr_index = torch.unique(labels, return_inverse=True)
        addr_tokens = cand_tokens[uniq]
    if CAPTION_TOKENS in needs:
        cap_tokens = batch["caption_tokens"].to(device, non_blocking=True)
    feats = model(images, addr_tokens, addr_index, cap_tokens)

    def as_float(t):        # the losses are computed in fp32
        return None if t is None else t.float()
    coords = batch["coords"].to(device, non_blocking=True) if COORDS in needs else None
    return loss_fn(as_float(feats["image"]), feats["logit_scale"].float(),
                   address=as_float(feats.get("address")), caption=as_float(feats.get("caption")),
                   coords=coords)


def validate(model: AddressCLIP, loader, candidates: CandidateSet, cand_tokens, device, precision) -> dict:
    text = encode_texts(model, cand_tokens, device, precision)
    top, _, labels = predict(model, loader, text, device, precision)
    model.train()
    return score(top, labels, candidates)


def log_lines_until(path: Path, step: int) -> list[str]:
    """The lines of the JSON-lines log ``path`` up to ``step``. A process killed while writing can
    leave a torn last line; it is dropped with a warning rather than making the resume fail."""
    kept = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            record_step = json.loads(line)["step"]
        except (ValueError, KeyError, TypeError):
            log.warning("%s:%d: unreadable log line dropped (written when the run was interrupted?)",
                        path, number)
            continue
        if record_step <= step:
            kept.append(line)
    return kept


class Logger:
    """TensorBoard scalars and a JSON-lines log on rank 0; no-ops elsewhere."""

    def __init__(self, run_dir: Path, env: DistEnv, resumed_step: int | None):
        self.tb = None
        self.jsonl = None
        if env.is_master:
            from torch.utils.tensorboard import SummaryWriter
            path = run_dir / "train_log.jsonl"
            if resumed_step is not None and path.is_file():  # drop what was logged after the checkpoint
                write_text(path, "".join(ln + "\n" for ln in log_lines_until(path, resumed_step)))
            purge = resumed_step + 1 if resumed_step is not None else None
            self.tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge)
            self.jsonl = open(path, "a", encoding="utf-8")

    def scalars(self, prefix: str, values: dict, step: int) -> None:
        if self.tb is None:
            return
        for k, v in values.items():
            if isinstance(v, (int, float)):
                self.tb.add_scalar(f"{prefix}/{k}", v, step)
        self.jsonl.write(json.dumps({"kind": prefix, "step": step, **values}) + "\n")
        self.jsonl.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.jsonl.close()


def train(cfg: Config, explicit: set[str], env: DistEnv) -> dict:
    run_dir = Path(cfg.run.out)
    resume_dir = None
    if cfg.run.resume:
        cfg = merge_for_resume(load_run_config(run_dir), cfg, explicit)
        resume_dir = broadcast_object(
            str(ckpt.resolve_checkpoint(run_dir, cfg.run.resume, for_resume=True))
            if env.is_master else None)
    elif broadcast_object((run_dir / ckpt.CHECKPOINTS).exists() if env.is_master else None):
        raise ConfigError(f"{run_dir} already holds a run; pass --resume latest to continue it, or "
                          "another --out (or delete the folder) to start over")

    device = env.device
    precision = resolve_precision(cfg.run.precision, device)
    torch.manual_seed(cfg.run.seed)
    ial = prepare_dataset(cfg, env)
    candidates = CandidateSet.from_dataset(ial)

    clip, model_config = create_clip(cfg.model.model, cfg.model.pretrained,
                                     force_quick_gelu=cfg.model.force_quick_gelu, device=device)
    cfg.model.force_quick_gelu = bool(model_config["model_cfg"]["quick_gelu"])  # record the choice
    apply_locks(clip, lock_image=cfg.model.lock_image,
                image_unlocked_groups=cfg.model.lock_image_unlocked_groups,
                lock_text=cfg.model.lock_text, text_unlocked_layers=cfg.model.lock_text_unlocked_layers)
    if cfg.model.grad_checkpointing:
        clip.set_grad_checkpointing(True)
    tokenizer = open_clip.get_tokenizer(cfg.model.model)
    preprocess = model_config["preprocess_cfg"]

    weights = LossWeights(**dataclasses.asdict(cfg.loss))
    workers = cfg.data.workers if cfg.data.workers is not None else default_workers()
    train_ds = IALImageDataset(ial, cfg.data.train_split, candidates, preprocess_cfg=preprocess,
                               train=True,
                               tokenizer=tokenizer if CAPTION_TOKENS in weights.inputs() else None,
                               augment=cfg.data.augment, crop_scale_min=cfg.data.crop_scale_min,
                               caption_address=cfg.data.caption_address, limit=cfg.data.limit_train)
    val_ds = None
    if cfg.data.val_split and env.is_master:
        val_ds = IALImageDataset(ial, cfg.data.val_split, candidates, preprocess_cfg=preprocess,
                                 train=False)
    cand_tokens = candidates.tokens(tokenizer).to(device)

    o = cfg.optim
    sampler = EpochBatchSampler(len(train_ds), o.batch_size, seed=cfg.run.seed, rank=env.rank,
                                world_size=env.world_size)
    steps_per_epoch = sampler.batches_per_epoch // o.accum_steps
    if steps_per_epoch == 0:
        raise DataError(f"{len(train_ds)} training images give fewer than accum_steps={o.accum_steps} "
                        f"batches of {o.batch_size} x {env.world_size}", path=ial.root)
    total_steps = steps_per_epoch * o.epochs
    loader = train_loader(train_ds, sampler, workers, pin_memory=device.type == "cuda")
    val_loader = eval_loader(val_ds, 2 * o.batch_size, workers, device.type == "cuda") if val_ds else None

    model = AddressCLIP(clip, text_length_groups=cfg.model.text_length_groups).to(device)
    optimizer = make_optimizer(model, cfg, device)
    scaler = grad_scaler(device, precision)
    step, start_epoch, start_micro = 0, 0, 0
    if resume_dir is not None:
        load_weights(clip, Path(resume_dir) / ckpt.MODEL_FILE, what=cfg.model.model)
        state = ckpt.load_training_state(resume_dir)
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        ckpt.set_rng_state(state["rng"])
        step, start_epoch, start_micro = state["step"], state["epoch"], state["batch_in_epoch"]
        if env.is_master:
            log.info("resumed %s at step %d (epoch %d, batch %d)", resume_dir, step, start_epoch,
                     start_micro)
            ckpt.remove_stale_temporaries(run_dir)
    elif env.is_master:
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg.save_yaml(run_dir / "config.yaml")
        ckpt.save_model_dir(run_dir / ckpt.CHECKPOINTS / ckpt.INIT, clip, model_config)
    barrier()

    ddp = env.distributed
    net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if ddp else model
    loss_fn = AddressCLIPLoss(weights, world_size=env.world_size)
    logger = Logger(run_dir, env, resumed_step=step if resume_dir else None)
    if env.is_master:
        n = count_parameters(clip)
        log.info("model %s: %.2fM parameters (%.2fM trainable); %d train images, %d candidates; "
                 "%d steps/epoch x %d epochs, global batch %d x accum %d; precision %s; %d workers",
                 cfg.model.model, n["total"] / 1e6, n["trainable"] / 1e6, len(train_ds),
                 len(candidates), steps_per_epoch, o.epochs, o.batch_size * env.world_size,
                 o.accum_steps, precision, workers)

    def save(epoch: int, micro: int) -> None:
        if env.is_master:
            ckpt.save_checkpoint(run_dir, clip=clip, model_config=model_config, optimizer=optimizer,
                                 scaler=scaler, step=step, epoch=epoch, batch_in_epoch=micro,
                                 keep=cfg.run.keep_checkpoints)
        barrier()

    result = {"steps": step, "val": None}
    t_start = time.perf_counter()
    micro_per_epoch = steps_per_epoch * o.accum_steps
    for epoch in range(start_epoch, o.epochs):
        micro = start_micro if epoch == start_epoch else 0
        sampler.set_epoch(epoch, micro)
        batches = iter(loader)
        model.train()
        bar = tqdm(total=steps_per_epoch, initial=micro // o.accum_steps, desc=f"epoch {epoch + 1}/"
                   f"{o.epochs}", disable=not (env.is_master and cfg.run.progress), dynamic_ncols=True)
        while micro < micro_per_epoch:
            lr = lr_at(step, lr=o.lr, lr_min=o.lr_min, warmup_steps=o.warmup_steps,
                       total_steps=total_steps)
            set_lr(optimizer, lr)
            t0 = time.perf_counter()
            sums: dict[str, float] = {}
            for k in range(o.accum_steps):
                batch = next(batches)
                micro += 1
                sync = nullcontext() if (not ddp or k == o.accum_steps - 1) else net.no_sync()
                with sync:
                    with autocast(device, precision):
                        losses = batch_losses(net, loss_fn, batch, cand_tokens, device)
                    total = losses["total"] / o.accum_steps
                    (scaler.scale(total) if scaler is not None else total).backward()
                for name, v in losses.items():
                    sums[name] = sums.get(name, 0.0) + float(v.detach()) / o.accum_steps
            if not all(math.isfinite(v) for v in sums.values()):
                raise FloatingPointError(f"non-finite loss at step {step}: {sums}")
            if scaler is not None:
                scaler.unscale_(optimizer)
            if o.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                clip.logit_scale.clamp_(0, math.log(100))
            step += 1
            dt = time.perf_counter() - t0
            images_per_s = o.batch_size * o.accum_steps * env.world_size / dt
            bar.update(1)
            bar.set_postfix(loss=f"{sums['total']:.3f}", lr=f"{lr:.2e}", img_s=f"{images_per_s:.0f}")
            if step % cfg.run.log_every == 0 or step == 1:
                logger.scalars("train", {**{f"loss_{k}": v for k, v in sums.items()}, "lr": lr,
                                         "logit_scale": float(clip.logit_scale.detach().exp()),
                                         "images_per_s": images_per_s, "epoch": epoch}, step)
            if cfg.run.save_every_steps and step % cfg.run.save_every_steps == 0:
                save(epoch, micro)
            if cfg.run.stop_at_step is not None and step >= cfg.run.stop_at_step:
                bar.close()
                save(epoch, micro)
                if env.is_master:
                    log.info("stopped at step %d as asked (--stop-at-step); continue with --resume latest",
                             step)
                logger.close()
                return {**result, "steps": step, "stopped": True}
        bar.close()
        last = epoch == o.epochs - 1
        if val_loader is not None and ((epoch + 1) % cfg.run.val_every == 0 or last):
            metrics = validate(model, val_loader, candidates, cand_tokens, device, precision)
            logger.scalars("val", {k: metrics[k] for k in ("ssa@1", "ssa@5", "sa@1", "sa@5")}, step)
            result["val"] = metrics
            log.info("epoch %d/%d step %d: val SSA@1 %.2f SSA@5 %.2f SA@1 %.2f SA@5 %.2f "
                     "(chance %.2f)", epoch + 1, o.epochs, step, metrics["ssa@1"], metrics["ssa@5"],
                     metrics["sa@1"], metrics["sa@5"], metrics["chance_ssa@1"])
        barrier()
        save(epoch + 1, 0)
    elapsed = time.perf_counter() - t_start
    if env.is_master:
        log.info("trained %d steps in %.1f s; run directory %s", step, elapsed, run_dir)
        write_text(run_dir / "train_summary.json", json.dumps(
            {"steps": step, "seconds": elapsed, "val": result["val"], "world_size": env.world_size},
            indent=2))
    barrier()       # ranks leave together, so none tears down gloo while another still writes
    logger.close()
    return {**result, "steps": step, "seconds": elapsed, "stopped": False}


@exit_2_on(ConfigError)        # a bad --config file or value: the message, no traceback
def main(argv: list[str] | None = None) -> int:
    cfg, explicit = parse_args(argv)
    env = init_distributed(cfg.run.device)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("addressclip").setLevel(logging.INFO if env.is_master else logging.WARNING)
    try:
        train(cfg, explicit, env)
    except (ConfigError, DataError, CheckpointError) as exc:
        log.error("%s", exc)
        return 2
    finally:
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
