"""Fine-tune a trained tokenizer's decoder on your data, with its encoder and quantizer frozen.

The tokens a model gives stay exactly the same (the encoder and quantizer do not move, and stay in
eval mode so no codebook statistics change); only the parts not listed in `model.freeze` learn,
from reconstruction losses: L1 / L2, multi-resolution STFT and mel (audio), perceptual (images).
For an adversarial decoder fine-tune, use train_autoencoder.py with `init_from` and `freeze`.

    python training/finetune_decoder.py RECIPE.yaml [section.key=value ...]
    torchrun --nproc-per-node 8 training/finetune_decoder.py RECIPE.yaml
"""


import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from zoo.train import checkpoint as ckpt
from zoo.train import distributed as zd
from zoo.train import losses as L
from zoo.train.data import DataConfig, build_dataset, build_loader
from zoo.train.ema import EMA
from zoo.train.monitor import Monitor
from zoo.train.optim import OptimConfig, build_optimizer, build_scheduler
from zoo.train.recipe import ModelConfig, TrainConfig, build_tokenizer, read_recipe, set_train_mode, to_dict


@dataclass(frozen=True)
class LossWeights:
    l1: float = 1.0
    l2: float = 0.0
    stft: float = 0.0
    mel: float = 0.0
    perceptual: float = 0.0
    stft_fft_sizes: tuple[int, ...] = (512, 1024, 2048)
    mel_n_ffts: tuple[int, ...] = (1024,)
    mel_n_mels: int = 100
    perceptual_backbone: str = "tiny_conv"
    perceptual_weights: str | None = None


@dataclass(frozen=True)
class ProgramConfig:
    program: str = "finetune_decoder"
    model: ModelConfig = field(default_factory=lambda: ModelConfig(freeze=("encoder", "quantizer")))
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4))
    loss: LossWeights = field(default_factory=LossWeights)


def main(cfg: ProgramConfig, env=os.environ) -> Path:
    if not cfg.model.init_from:
        raise ValueError("finetune_decoder needs model.init_from: a catalogue name, a folder or a hub id.")
    if not cfg.model.freeze:
        raise ValueError("finetune_decoder needs model.freeze (e.g. [encoder, quantizer]); to train everything use train_autoencoder.py.")
    info = zd.setup(env, cfg.train.device)
    log = zd.get_logger("finetune_decoder", info)
    run_dir = Path(cfg.train.run_dir)
    precision = zd.resolve_precision(cfg.train.precision, info.device)
    w = cfg.loss

    zd.seed_all(cfg.train.seed)
    model = build_tokenizer(cfg.model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("fine-tuning %s from %s: %d of %d parameters trainable (frozen: %s)", type(model).__name__,
             cfg.model.init_from, trainable, model.num_parameters(), ", ".join(cfg.model.freeze))
    mel = L.MelLoss(cfg.data.sample_rate, w.mel_n_ffts, n_mels=w.mel_n_mels).to(info.device) if w.mel else None
    stft = L.MultiResolutionSTFTLoss(w.stft_fft_sizes).to(info.device) if w.stft else None
    perceptual = L.build_perceptual(w.perceptual_backbone, w.perceptual_weights).to(info.device) if w.perceptual else None
    model = zd.wrap(model, cfg.train.strategy, info, find_unused_parameters=cfg.train.find_unused_parameters)
    inner = zd.unwrap(model)
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
            with zd.gradient_sync(model, i == accum - 1):  # forward and backward (FSDP2)
                with zd.autocast(precision, info.device):
                    recon = model(x).recon
                    t = {}
                    if w.l1:
                        t["l1"] = w.l1 * L.l1_loss(recon, x)
                    if w.l2:
                        t["l2"] = w.l2 * L.l2_loss(recon, x)
                    if w.stft:
                        t["stft"] = w.stft * stft(recon, x)
                    if w.mel:
                        t["mel"] = w.mel * mel(recon, x)
                    if w.perceptual:
                        t["perceptual"] = w.perceptual * perceptual(recon, x)
                    if not t:
                        raise ValueError("finetune_decoder: every loss weight is 0; set at least one of l1, l2, stft, mel, perceptual.")
                    loss = sum(t.values())
                scaler.scale(loss / accum).backward()
            for k, v in [*t.items(), ("loss", loss)]:
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
                           training=f"finetune_decoder.py from {cfg.model.init_from}, {cfg.train.steps} steps, "
                                    f"frozen: {', '.join(cfg.model.freeze)}.")
    log.info("saved %s", final)
    zd.cleanup(info)
    return final


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: finetune_decoder.py RECIPE.yaml [section.key=value ...]")
    main(read_recipe(ProgramConfig, sys.argv[1], sys.argv[2:], program="finetune_decoder"))
