"""Train a tokenizer whose decoder is a rectified flow (FlexTok, Selftok style) conditioned on its tokens.

The tokenizer's family names its flow pass (zoo/train/families.py `HOOKS`: flow_forward, flow_noise_shape), in the
flow's convention: `flow_forward(tok, x, t=t, noise=noise) -> zoo.api.FlowOutput`
encodes `x`, builds its noisy input from `noise` and the timesteps `t`, and returns the predicted
velocity and the velocity it should match. This program samples `t` from a logit-normal
distribution (SD3, arXiv:2403.03206) and `noise` from N(0, I) (shaped like `x`, or like
`tok.flow_noise_shape(x)` when the flow runs in a latent space), and minimises the velocity MSE plus
the tokenizer's other losses (`FlowOutput.losses`: quantizer, REPA, ...; each is also logged).
A family with a REPA encoder (FlexTok with `repa_encoder` set; zoo/train/families.py `HOOKS`) gets its frozen
features of each batch as `flow_forward(repa_target=)`. `model.freeze` can keep the encoder and quantizer fixed.

    python training/train_flow_decoder.py RECIPE.yaml [section.key=value ...]
    torchrun --nproc-per-node 8 training/train_flow_decoder.py RECIPE.yaml
"""


import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from zoo.train import distributed as zd
from zoo.train import losses as L
from zoo.train.families import families_with, hooks
from zoo.train.loop import begin, fit, prepare, single_step
from zoo.train.recipe import ProgramSections, build_tokenizer, read_recipe


@dataclass(frozen=True)
class FlowConfig:
    t_mean: float = 0.0  # logit-normal timesteps: t = sigmoid(N(t_mean, t_std^2))
    t_std: float = 1.0
    # share of samples at t = 1 exactly (pure noise: the decoder can only use the tokens); 0 = plain logit-normal
    t_one_prob: float = 0.0
    quantizer_weight: float = 1.0  # times the sum of the quantizer's losses


@dataclass(frozen=True)
class ProgramConfig(ProgramSections):
    program: str = "train_flow_decoder"
    flow: FlowConfig = field(default_factory=FlowConfig)


def main(cfg: ProgramConfig, env=os.environ) -> Path:
    info, log, precision = begin("train_flow_decoder", cfg, env)
    model = build_tokenizer(cfg.model)
    family = hooks(model.family)
    if family.flow_forward is None:
        raise TypeError(f"{type(model).__name__} (family {model.family!r}) has no flow_forward hook; "
                        "train_flow_decoder.py trains tokenizers with a flow decoder "
                        f"({', '.join(families_with('flow_forward'))}). Use train_autoencoder.py for the others.")
    log.info("model %s: %.2f M parameters; %d process(es) on %s, %s", type(model).__name__,
             model.num_parameters() / 1e6, info.world_size, info.device, precision)
    model, opt, sched, scaler = prepare(model, cfg.train, cfg.optim, info, precision,
                                        forward_methods=family.fsdp_forward_methods)
    repa = family.repa_encoder(zd.unwrap(model)) if family.repa_encoder else None  # frozen; never saved or trained
    noise_shape = family.flow_noise_shape or (lambda tok, x: tuple(x.shape))  # default: noise like the input

    def loss_fn(tok, x):  # tok: the unwrapped model; this runs as the wrapped model's forward (DDP / FSDP2)
        t = L.logit_normal_timesteps(x.shape[0], cfg.flow.t_mean, cfg.flow.t_std, device=info.device)
        if cfg.flow.t_one_prob > 0:
            t = torch.where(torch.rand(t.shape, device=t.device) < cfg.flow.t_one_prob, torch.ones_like(t), t)
        # the flow's noise has the shape of what the flow runs on (a VAE latent for FlexTok)
        noise = torch.randn(noise_shape(tok, x), device=x.device, dtype=x.dtype)
        extra = {}
        if repa is not None:
            with torch.no_grad():
                extra["repa_target"] = repa(x)
        out = family.flow_forward(tok, x, t=t, noise=noise, **extra)
        flow = L.flow_matching_loss(out.velocity, out.target)
        quant = L.sum_losses(out.losses, cfg.flow.quantizer_weight).to(flow.device)
        loss = flow + quant
        other = {k: v for k, v in out.losses.items() if k not in ("loss", "flow", "quantizer")}  # e.g. repa
        return loss, {"loss": loss, "flow": flow, "quantizer": quant, **other}

    step = single_step(model, opt, sched, scaler, loss_fn, cfg.train, precision, info)
    return fit(cfg, info, log, step, models={"model": model}, optimizers={"model": (model, opt)},
               schedulers={"model": sched}, scalers={"model": scaler},
               training=f"train_flow_decoder.py, {cfg.train.steps} steps, {info.world_size} process(es).")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: train_flow_decoder.py RECIPE.yaml [section.key=value ...]")
    main(read_recipe(ProgramConfig, sys.argv[1], sys.argv[2:], program="train_flow_decoder"))
