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

from zoo.train import losses as L
from zoo.train.families import hooks
from zoo.train.loop import begin, fit, prepare, single_step
from zoo.train.optim import OptimConfig
from zoo.train.recipe import ModelConfig, ProgramSections, build_tokenizer, read_recipe


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
class ProgramConfig(ProgramSections):
    program: str = "finetune_decoder"
    model: ModelConfig = field(default_factory=lambda: ModelConfig(freeze=("encoder", "quantizer")))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4))
    loss: LossWeights = field(default_factory=LossWeights)


def main(cfg: ProgramConfig, env=os.environ) -> Path:
    if not cfg.model.init_from:
        raise ValueError("finetune_decoder needs model.init_from: a catalogue name, a folder or a hub id.")
    if not cfg.model.freeze:
        raise ValueError("finetune_decoder needs model.freeze (e.g. [encoder, quantizer]); to train everything use train_autoencoder.py.")
    info, log, precision = begin("finetune_decoder", cfg, env)
    w = cfg.loss
    model = build_tokenizer(cfg.model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("fine-tuning %s from %s: %d of %d parameters trainable (frozen: %s)", type(model).__name__,
             cfg.model.init_from, trainable, model.num_parameters(), ", ".join(cfg.model.freeze))
    mel = L.MelLoss(cfg.data.sample_rate, w.mel_n_ffts, n_mels=w.mel_n_mels).to(info.device) if w.mel else None
    stft = L.MultiResolutionSTFTLoss(w.stft_fft_sizes).to(info.device) if w.stft else None
    perceptual = L.build_perceptual(w.perceptual_backbone, w.perceptual_weights).to(info.device) if w.perceptual else None
    family = hooks(model.family)
    model, opt, sched, scaler = prepare(model, cfg.train, cfg.optim, info, precision,
                                        forward_methods=family.fsdp_forward_methods)

    def loss_fn(tok, x):  # tok: the unwrapped model; this runs as the wrapped model's forward
        recon = tok.forward(x).recon
        t = L.reconstruction_terms(w, recon, x, stft=stft, mel=mel, perceptual=perceptual)
        if not t:
            raise ValueError("finetune_decoder: every loss weight is 0; set at least one of l1, l2, stft, mel, perceptual.")
        loss = sum(t.values())
        return loss, {**t, "loss": loss}

    step = single_step(model, opt, sched, scaler, loss_fn, cfg.train, precision, info)
    return fit(cfg, info, log, step, models={"model": model}, optimizers={"model": (model, opt)},
               schedulers={"model": sched}, scalers={"model": scaler},
               training=f"finetune_decoder.py from {cfg.model.init_from}, {cfg.train.steps} steps, "
                        f"frozen: {', '.join(cfg.model.freeze)}.")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: finetune_decoder.py RECIPE.yaml [section.key=value ...]")
    main(read_recipe(ProgramConfig, sys.argv[1], sys.argv[2:], program="finetune_decoder"))
