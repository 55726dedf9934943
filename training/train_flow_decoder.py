"""Train a tokenizer whose decoder is a rectified flow (FlexTok, Selftok style) conditioned on its tokens.

The tokenizer keeps the flow's convention: `tok.flow_forward(x, t=t, noise=noise) -> zoo.api.FlowOutput`
encodes `x`, builds its noisy input from `noise` and the timesteps `t`, and returns the predicted
velocity and the velocity it should match. This program samples `t` from a logit-normal
distribution (SD3, arXiv:2403.03206) and `noise` from N(0, I) (shaped like `x`, or like
`tok.flow_noise_shape(x)` when the flow runs in a latent space), and minimises the velocity MSE plus
the tokenizer's other losses (`FlowOutput.losses`: quantizer, REPA, ...; each is also logged).
`model.freeze` can keep the encoder and quantizer fixed.

    python training/train_flow_decoder.py RECIPE.yaml [section.key=value ...]
    torchrun --nproc-per-node 8 training/train_flow_decoder.py RECIPE.yaml
"""


import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from zoo.train import checkpoint as ckpt
from zoo.train import distributed as zd
from zoo.train import losses as L
from zoo.train.data import DataConfig, build_dataset, build_loader
from zoo.train.ema import EMA
from zoo.train.monitor import Monitor
from zoo.train.optim import OptimConfig, build_optimizer, build_scheduler
from zoo.train.recipe import ModelConfig, TrainConfig, build_tokenizer, read_recipe, set_train_mode, to_dict


@dataclass(frozen=True)
class FlowConfig:
    t_mean: float = 0.0  # logit-normal timesteps: t = sigmoid(N(t_mean, t_std^2))
    t_std: float = 1.0
    # share of samples at t = 1 exactly (pure noise: the decoder can only use the tokens); 0 = plain logit-normal
    t_one_prob: float = 0.0
    quantizer_weight: float = 1.0  # times the sum of the quantizer's losses


@dataclass(frozen=True)
class ProgramConfig:
    program: str = "train_flow_decoder"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)


def main(cfg: ProgramConfig, env=os.environ) -> Path:
    info = zd.setup(env, cfg.train.device)
    log = zd.get_logger("train_flow_decoder", info)
    run_dir = Path(cfg.train.run_dir)
    precision = zd.resolve_precision(cfg.train.precision, info.device)

    zd.seed_all(cfg.train.seed)
    model = build_tokenizer(cfg.model)
    if not hasattr(model, "flow_forward"):
        raise TypeError(f"{type(model).__name__} has no flow_forward(x, t=, noise=); train_flow_decoder.py trains "
                        "tokenizers with a flow decoder. Use train_autoencoder.py for the others.")
    log.info("model %s: %.2f M parameters; %d process(es) on %s, %s", type(model).__name__,
             model.num_parameters() / 1e6, info.world_size, info.device, precision)
    model = zd.wrap(model, cfg.train.strategy, info, find_unused_parameters=cfg.train.find_unused_parameters)
    inner = zd.unwrap(model)
    flow_forward = zd.forward_method(model, "flow_forward")
    noise_shape = getattr(inner, "flow_noise_shape", lambda x: tuple(x.shape))  # default: noise like the input
    opt = build_optimizer(model.parameters(), cfg.optim)
    sched = build_scheduler(opt, cfg.optim, cfg.train.steps)
    scaler = zd.grad_scaler(precision, info.device)
    ema = EMA(model, cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None
    parts = dict(models={"model": model}, optimizers={"model": (model, opt)}, schedulers={"model": sched},
                 scalers={"model": scaler}, ema=ema)

    start, batches = 0, 0
    resume = ckpt.resolve_resume(cfg.train.resume, run_dir)
    if resume is not None:
        state = ckpt.load_checkpoint(resume, info, **parts)
        start, batches = state["step"], state["data"]["batches"]
        log.info("resumed from %s at step %d", resume, start)
    else:
        zd.seed_all(cfg.train.seed + 1 + info.rank)
    loader = build_loader(build_dataset(cfg.data), cfg.data, rank=info.rank, world_size=info.world_size,
                          seed=cfg.train.seed, start_batch=batches)
    monitor = Monitor(run_dir, enabled=info.is_main, total_steps=cfg.train.steps, start_step=start,
                      tensorboard=cfg.train.tensorboard, progress=cfg.train.progress, logger=log)
    accum, sums, n_logged = cfg.train.grad_accum, {}, 0

    for step in range(start, cfg.train.steps):
        set_train_mode(inner, cfg.model.freeze)
        opt.zero_grad(set_to_none=True)
        terms = {}
        for i in range(accum):
            x = next(loader).to(info.device, non_blocking=True)
            batches += 1
            t = L.logit_normal_timesteps(x.shape[0], cfg.flow.t_mean, cfg.flow.t_std, device=info.device)
            if cfg.flow.t_one_prob > 0:
                t = torch.where(torch.rand(t.shape, device=t.device) < cfg.flow.t_one_prob, torch.ones_like(t), t)
            # the flow's noise has the shape of what the flow runs on (a VAE latent for FlexTok)
            noise = torch.randn(noise_shape(x), device=x.device, dtype=x.dtype)
            with zd.gradient_sync(model, i == accum - 1):  # forward and backward (FSDP2)
                with zd.autocast(precision, info.device):
                    out = flow_forward(x, t=t, noise=noise)  # through the wrapper's hooks (DDP / FSDP2)
                    flow = L.flow_matching_loss(out.velocity, out.target)
                    quant = L.sum_losses(out.losses, cfg.flow.quantizer_weight).to(flow.device)
                    loss = flow + quant
                scaler.scale(loss / accum).backward()
            other = [(k, v) for k, v in out.losses.items() if k not in ("loss", "flow", "quantizer")]  # e.g. repa
            for k, v in (("loss", loss), ("flow", flow), ("quantizer", quant), *other):
                terms[k] = terms.get(k, 0.0) + float(v.detach()) / accum
        scaler.unscale_(opt)
        terms["grad_norm"] = float(zd.clip_grad_norm(model, cfg.train.clip_grad_norm))
        scaler.step(opt)
        scaler.update()
        sched.step()
        if ema is not None:
            ema.update(model)

        done = step + 1
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v
        n_logged += 1
        if done % cfg.train.log_every == 0 or done == cfg.train.steps:
            means = zd.all_reduce_mean({k: v / n_logged for k, v in sums.items()}, info)
            means["lr"] = sched.get_last_lr()[0]
            monitor.log(done, means, samples=n_logged * accum * cfg.data.batch_size * info.world_size)
            sums, n_logged = {}, 0
        if done % cfg.train.ckpt_every == 0 or done == cfg.train.steps:
            ckpt.save_checkpoint(run_dir, done, info, data_state={"batches": batches}, extra={"recipe": to_dict(cfg)},
                                 keep=cfg.train.keep_checkpoints, **parts)

    monitor.close()
    final = run_dir / "final"
    ckpt.export_pretrained(model, info, final, ema=ema,
                           training=f"train_flow_decoder.py, {cfg.train.steps} steps, {info.world_size} process(es).")
    log.info("saved %s", final)
    zd.cleanup(info)
    return final


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: train_flow_decoder.py RECIPE.yaml [section.key=value ...]")
    main(read_recipe(ProgramConfig, sys.argv[1], sys.argv[2:], program="train_flow_decoder"))
