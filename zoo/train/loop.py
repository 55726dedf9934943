"""The one training loop that the programs under training/ share; each program brings its own step.

    info, log, precision = begin("train_x", cfg, env)        # process group, logger, precision, seed
    model, opt, sched, scaler = prepare(model, cfg.train, cfg.optim, info, precision)   # wrap + optimiser
    step = single_step(model, opt, sched, scaler, loss_fn, cfg.train, precision, info)  # or the program's own:
    # step(i, next_batch) -> {term: value}, built from accumulate(...) and update(...)
    # loss_fn(model, batch) -> (loss, {term: tensor}) runs as the wrapped model's forward (zd.loss_forward)
    fit(cfg, info, log, step, models=..., optimizers=..., schedulers=..., scalers=..., training="...")

`fit` does what every program does the same way: resume (`train.resume`: models, optimisers,
schedulers, scalers, EMA, every rank's RNG and the data position), the recipe's dataset and a
resumable loader (`next_batch()` counts what a step draws), per step frozen parts to eval mode, the
program's step, the EMA update; means of the logged terms over `train.log_every` steps (all ranks),
checkpoints every `train.ckpt_every` steps and at the end, and `final/` via save_pretrained.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from torch import nn

from zoo.train import checkpoint as ckpt
from zoo.train import distributed as zd
from zoo.train.data import build_dataset, build_loader
from zoo.train.ema import EMA
from zoo.train.monitor import Monitor
from zoo.train.optim import OptimConfig, build_optimizer, build_scheduler
from zoo.train.recipe import TrainConfig, set_train_mode, to_dict


def begin(name: str, cfg, env: Mapping[str, str] = os.environ):
    """Join the process group (torchrun) or stay single; a rank-aware logger; the resolved precision.
    Seeds every rank alike, so that models built next start from the same weights."""
    info = zd.setup(env, cfg.train.device)
    log = zd.get_logger(name, info)
    precision = zd.resolve_precision(cfg.train.precision, info.device)
    zd.seed_all(cfg.train.seed)
    return info, log, precision


def prepare(module: nn.Module, train: TrainConfig, optim: OptimConfig, info: zd.DistInfo, precision: str, *,
            forward_methods: tuple[str, ...] = ()):
    """Wrap a module for the run (DDP / FSDP2 under torchrun) and give it an optimiser, its LR schedule
    and an fp16 grad scaler: -> (wrapped module, optimizer, scheduler, scaler). forward_methods: the family's
    `fsdp_forward_methods` (zoo.train.families)."""
    module = zd.wrap(module, train.strategy, info, find_unused_parameters=train.find_unused_parameters,
                     forward_methods=forward_methods)
    opt = build_optimizer(module.parameters(), optim)
    return module, opt, build_scheduler(opt, optim, train.steps), zd.grad_scaler(precision, info.device)


def accumulate(modules: list, items: Iterable, n: int, loss_fn: Callable[[Any], tuple[Any, dict]], scaler,
               precision: str, info: zd.DistInfo) -> dict[str, float]:
    """Forward and backward over `n` micro-batches (`items`, drawn lazily), gradients summed as for one
    batch n times larger; `modules` sync their gradients on the last one only. `loss_fn(item)` runs
    under autocast and returns (loss, {name: tensor to log}); -> {name: mean over the micro-batches}.
    Under DDP, `loss_fn` is the model's forward (`zd.loss_forward`), so that DDP sees what the loss uses."""
    terms: dict[str, float] = {}
    for i, item in enumerate(items):
        with contextlib.ExitStack() as sync:  # around forward AND backward: FSDP2 reads the flag in backward
            for m in modules:
                sync.enter_context(zd.gradient_sync(m, i == n - 1))
            with zd.autocast(precision, info.device):
                loss, logged = loss_fn(item)
            scaler.scale(loss / n).backward()
        for k, v in logged.items():
            terms[k] = terms.get(k, 0.0) + float(v.detach()) / n
    for m in modules:
        zd.check_gradients(m)
    return terms


def update(module: nn.Module, opt, sched, scaler, clip: float) -> float:
    """One optimiser step from the accumulated gradients (unscaled, clipped); -> the gradient norm."""
    scaler.unscale_(opt)
    norm = float(zd.clip_grad_norm(module, clip))
    scaler.step(opt)
    scaler.update()
    sched.step()
    return norm


def single_step(model: nn.Module, opt, sched, scaler, loss_fn, train: TrainConfig, precision: str, info: zd.DistInfo):
    """The step of a program with one model and one optimiser: `train.grad_accum` micro-batches through
    `loss_fn(unwrapped model, batch) -> (loss, {name: tensor})`, run as the model's forward (`zd.loss_forward`;
    call `model.forward(x)` or another pass in it), then one update. -> `step(i, next_batch)` for `fit`."""
    loss = zd.loss_forward(model, loss_fn)

    def step(i, next_batch):
        opt.zero_grad(set_to_none=True)
        micro = (next_batch().to(info.device, non_blocking=True) for _ in range(train.grad_accum))
        terms = accumulate([model], micro, train.grad_accum, loss, scaler, precision, info)
        terms["grad_norm"] = update(model, opt, sched, scaler, train.clip_grad_norm)
        return terms

    return step


def fit(cfg, info: zd.DistInfo, log, step: Callable[[int, Callable[[], Any]], dict[str, float]], *,
        models: Mapping[str, nn.Module], optimizers: Mapping[str, tuple], schedulers: Mapping[str, Any],
        scalers: Mapping[str, Any], training: str) -> Path:
    """Run `step(i, next_batch) -> {term: value}` for steps [resumed step, cfg.train.steps) and save the
    result. `models["model"]` is the tokenizer: its EMA, LR and exported weights; `training` goes on its card."""
    t = cfg.train
    run_dir = Path(t.run_dir)
    model = models["model"]
    ema = EMA(model, t.ema_decay) if t.ema_decay > 0 else None
    parts = dict(models=models, optimizers=optimizers, schedulers=schedulers, scalers=scalers, ema=ema)

    start, batches = 0, 0
    resume = ckpt.resolve_resume(t.resume, run_dir)
    if resume is not None:
        state = ckpt.load_checkpoint(resume, info, **parts)
        start, batches = state["step"], state["data"]["batches"]
        log.info("resumed from %s at step %d", resume, start)
    else:
        zd.seed_all(t.seed + 1 + info.rank)  # from here on, each rank draws its own randomness
    loader = build_loader(build_dataset(cfg.data), cfg.data, rank=info.rank, world_size=info.world_size,
                          seed=t.seed, start_batch=batches)
    monitor = Monitor(run_dir, enabled=info.is_main, total_steps=t.steps, start_step=start,
                      tensorboard=t.tensorboard, progress=t.progress, logger=log)

    def next_batch():
        nonlocal batches
        batches += 1
        return next(loader)

    sums, n_logged = {}, 0
    for i in range(start, t.steps):
        set_train_mode(zd.unwrap(model), cfg.model.freeze)
        terms = step(i, next_batch)
        if ema is not None:
            ema.update(model)

        done = i + 1
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v
        n_logged += 1
        if done % t.log_every == 0 or done == t.steps:
            means = zd.all_reduce_mean({k: v / n_logged for k, v in sums.items()}, info)
            means["lr"] = schedulers["model"].get_last_lr()[0]
            monitor.log(done, means, samples=n_logged * t.grad_accum * cfg.data.batch_size * info.world_size)
            sums, n_logged = {}, 0
        if done % t.ckpt_every == 0 or done == t.steps:
            ckpt.save_checkpoint(run_dir, done, info, data_state={"batches": batches}, extra={"recipe": to_dict(cfg)},
                                 keep=t.keep_checkpoints, **parts)

    monitor.close()
    final = run_dir / "final"
    ckpt.export_pretrained(model, info, final, ema=ema, training=training)
    log.info("saved %s", final)
    zd.cleanup(info)
    return final
