"""Train a tokenizer as an autoencoder: reconstruction losses first, then an adversarial stage.

The stage schedule is a recipe setting (`loss.stages`: from which step which loss weights apply),
not a code fork. Losses: L1 / L2, multi-resolution STFT, mel, perceptual (images), the quantizer's
own losses (commitment, codebook, entropy: TokenizerOutput.losses), adversarial (hinge or least
squares) and feature matching against PatchGAN (images) or MPD + MRD (audio, as WavTokenizer).

    python training/train_autoencoder.py RECIPE.yaml [section.key=value ...]
    torchrun --nproc-per-node 8 training/train_autoencoder.py RECIPE.yaml

Speech tokenizers whose forward gives quantized features (TokenizerOutput.features: XY-Tokenizer)
can add an ASR alignment term (`semantic` weight, `loss.semantic`): a trainable adapter maps the
features into a frozen language model chosen by name, which predicts the transcript (`data.text`);
see zoo/train/semantic_lm.py. The adapter is trained and checkpointed next to the model (own
optimiser, same optim settings); the LM is neither trained nor saved.

3D tokenizers (VAT) train on `data.kind: mesh_folder` batches ({"x", "queries", "occupancy"}): the
model computes its own losses (occupancy BCE, KL, commitment), weighted by `quantizer`, and a stage
with `continuous: true` trains it without its quantiser (the family's `continuous_forward` hook).

One-D-Piece / TiTok's stage 1 trains on a proxy teacher's codes (`loss.proxy_teacher`): `proxy` (cross-entropy on
them), `proxy_render` (the model's pixel decoder renders them: a decoder for a teacher that has none) and
`proxy_decode` (the teacher's own decoder renders the model's proxy-code probabilities; the patch k-means
stand-in's centroid mix). One-D-Piece's `continuous: true` is a warm-up: the decoder reads unquantised latents.
These family-specific passes (zoo/train/<family>.py) are chosen by family name in zoo/train/families.py (`HOOKS`).

Each step: the generator's micro-batches (forward, loss, backward; the discriminator's own gradients
from this pass are discarded), one generator update; then, in adversarial stages, the
discriminator's micro-batches on real and detached generated batches, one discriminator update; EMA.
"""


import os
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch

from zoo.train import distributed as zd
from zoo.train import losses as L
from zoo.train.discriminators import build_discriminator
from zoo.train.families import families_with, hooks
from zoo.train.loop import accumulate, begin, fit, prepare, update
from zoo.train.optim import OptimConfig
from zoo.train.proxy import PatchKMeansTeacher, load_teacher
from zoo.train.recipe import ProgramSections, build_tokenizer, read_recipe
from zoo.train.semantic_lm import ASRAlignment, build_lm


@dataclass(frozen=True)
class LossWeights:
    l1: float = 0.0
    l2: float = 0.0
    stft: float = 0.0  # multi-resolution STFT (audio)
    mel: float = 0.0  # multi-scale mel L1 (audio)
    perceptual: float = 0.0  # LPIPS-style (images)
    quantizer: float = 1.0  # times the sum of the quantizer's losses
    adversarial: float = 0.0
    feature_matching: float = 0.0
    semantic: float = 0.0  # ASR alignment through a frozen LM (loss.semantic; needs data.text)
    proxy: float = 0.0  # cross-entropy on a teacher's proxy codes (loss.proxy_teacher; TiTok's stage 1)
    # L2 of the model's pixel decoder rendering the teacher's codes (trains a decoder for a teacher that has none,
    # e.g. the patch k-means stand-in; upstream's stage 2 starts from the MaskGIT-VQGAN decoder instead)
    proxy_render: float = 0.0
    # L2 of the teacher's own decoder applied to the model's proxy-code probabilities (the patch k-means teacher's
    # centroid mix): a pixel-space stage-1 signal whose logits keep the teacher's meaning
    proxy_decode: float = 0.0


@dataclass(frozen=True)
class Stage:
    name: str = "reconstruction"
    from_step: int = 0  # the stage with the largest from_step <= step applies
    weights: LossWeights = field(default_factory=lambda: LossWeights(l1=1.0))
    continuous: bool = False  # bypass the quantiser (a plain VAE stage, as VAT's first); needs a continuous_forward hook


@dataclass(frozen=True)
class SemanticConfig:
    lm: str | None = None  # char_lm | hf_causal_lm | module:callable (your own code); see zoo.train.semantic_lm
    lm_path: str | None = None  # char_lm: a CharLM.save file (none: a fixed random one); hf_causal_lm: folder or hub id
    adapter_layers: int = 2  # Linear(feature width -> LM width), then (GELU, Linear) x (layers - 1)
    prompt: str = ""  # text between BOS and the transcript (not scored)


@dataclass(frozen=True)
class LossConfig:
    stages: tuple[Stage, ...] = (Stage(),)
    adversarial: str = "hinge"  # hinge | lsgan
    stft_fft_sizes: tuple[int, ...] = (512, 1024, 2048)
    mel_n_ffts: tuple[int, ...] = (1024,)
    mel_n_mels: int = 100
    perceptual_backbone: str = "tiny_conv"  # tiny_conv (built here) | vgg16 (weights from perceptual_weights)
    perceptual_weights: str | None = None  # local state-dict file of the backbone
    semantic: SemanticConfig = field(default_factory=SemanticConfig)
    proxy_teacher: str | None = None  # MaskGIT-VQGAN .bin (official) or patch k-means file (fit_proxy_teacher.py)


@dataclass(frozen=True)
class DiscriminatorConfig:
    kind: str = "patchgan"  # patchgan | mpd | mrd | mpd+mrd
    width: int = 64  # PatchGAN
    num_layers: int = 3
    norm: str = "batch"
    periods: tuple[int, ...] = (2, 3, 5, 7, 11)  # MPD
    mpd_channels: tuple[int, ...] = (32, 128, 512, 1024, 1024)
    resolutions: tuple[tuple[int, int, int], ...] = ((1024, 256, 1024), (2048, 512, 2048), (512, 128, 512))  # MRD
    mrd_channels: int = 32
    optim: OptimConfig = field(default_factory=OptimConfig)


@dataclass(frozen=True)
class ProgramConfig(ProgramSections):
    program: str = "train_autoencoder"
    loss: LossConfig = field(default_factory=LossConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)


def stage_at(stages: tuple[Stage, ...], step: int) -> Stage:
    started = [s for s in stages if s.from_step <= step]
    if not started:
        raise ValueError(f"No loss stage starts at step {step}; the first stage must have from_step: 0.")
    return max(started, key=lambda s: s.from_step)


def split_text(batch):
    """A batch -> (media, transcripts or None): with data.text, audio batches come as [wav, [str] * B]."""
    if isinstance(batch, (list, tuple)):
        media, texts = batch
        return media, list(texts)
    return batch, None


def to_device(batch, device):
    """A tensor, or a dict of tensors (3D samples), onto the device."""
    if isinstance(batch, dict):
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    return batch.to(device, non_blocking=True)


MEDIA_TERMS = ("l1", "l2", "stft", "mel", "perceptual", "adversarial", "feature_matching")  # compare media


def needs_recon(w: LossWeights) -> bool:
    """Whether a stage's losses read the model's reconstruction (else a proxy-code stage skips rendering it)."""
    return any(getattr(w, k) for k in MEDIA_TERMS)


def check_stages(stages: tuple[Stage, ...], model, kind: str) -> None:
    if any(s.continuous for s in stages) and hooks(model.family).continuous_forward is None:
        raise ValueError(f"A stage has continuous: true, but {type(model).__name__} (family {model.family!r}) has no "
                         "continuous_forward hook; only tokenizers with a bypassable quantiser "
                         f"({', '.join(families_with('continuous_forward'))}) train that way.")
    if kind == "mesh_folder":
        used = sorted({t for s in stages for t in MEDIA_TERMS if getattr(s.weights, t)})
        if used:
            raise ValueError(f"3D (mesh_folder) training uses the model's own losses (weight: quantizer); "
                             f"the stages also set {used}, which compare media and do not apply.")


def build_semantic(cfg: SemanticConfig, model, text: str, device):
    """The frozen LM and the ASR alignment (adapter) for stages that weight `semantic`. The model's
    feature width is read from one eval-mode forward of its example input (no codebook update)."""
    if text == "none":
        raise ValueError("A loss stage weights `semantic` (ASR alignment), which needs transcripts: set data.text "
                         "to sidecar (<stem>.txt beside each audio file) or filename (the stem is the text).")
    if cfg.lm is None:
        raise ValueError("A loss stage weights `semantic`, but loss.semantic.lm is not set; name the frozen LM "
                         "(char_lm, hf_causal_lm or module:callable).")
    model.eval()
    x, _ = model.example_input(1, torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = model(x).features  # forward takes media at the model's own rate, as the batches are
    model.train()
    if features is None:
        raise ValueError(f"A loss stage weights `semantic`, but {type(model).__name__}.forward gives no quantized "
                         "features (TokenizerOutput.features) for the ASR alignment to read; XY-Tokenizer does.")
    lm = build_lm(cfg.lm, cfg.lm_path, device)
    prefix = [lm.bos_id, *lm.tokenize(cfg.prompt)]
    return lm, ASRAlignment(features.shape[1], lm.width, cfg.adapter_layers, prefix)


def main(cfg: ProgramConfig, env=os.environ) -> Path:
    info, log, precision = begin("train_autoencoder", cfg, env)
    stages, accum, clip = cfg.loss.stages, cfg.train.grad_accum, cfg.train.clip_grad_norm
    model = build_tokenizer(cfg.model)
    family = hooks(model.family)
    check_stages(stages, model, cfg.data.kind)
    lm, semantic = (build_semantic(cfg.loss.semantic, model, cfg.data.text, info.device)
                    if any(s.weights.semantic for s in stages) else (None, None))
    teacher = None
    if any(s.weights.proxy or s.weights.proxy_render or s.weights.proxy_decode for s in stages):
        if cfg.loss.proxy_teacher is None:
            raise ValueError("A loss stage weights `proxy`, `proxy_render` or `proxy_decode`, but loss.proxy_teacher "
                             "names no teacher file; give the official maskgit-vqgan-imagenet-f16-256.bin "
                             "(fun-research/TiTok) or write a stand-in with training/fit_proxy_teacher.py.")
        if family.proxy_forward is None:
            raise ValueError(f"A loss stage weights `proxy`, but {type(model).__name__} (family {model.family!r}) has "
                             "no proxy_forward hook (proxy-code training is One-D-Piece's / TiTok's stage 1; "
                             f"families with it: {', '.join(families_with('proxy_forward'))}).")
        teacher = load_teacher(cfg.loss.proxy_teacher).to(info.device)
        classes = family.proxy_classes(model) if family.proxy_classes else None
        if classes is not None and teacher.num_codes != classes:
            raise ValueError(f"The proxy teacher {cfg.loss.proxy_teacher} gives {teacher.num_codes} codes, but the model "
                             f"predicts {classes} (model.config.proxy_codebook_size); make them equal.")
        if any(s.weights.proxy_decode for s in stages) and not isinstance(teacher, PatchKMeansTeacher):
            raise ValueError(f"A loss stage weights `proxy_decode`, but the proxy teacher {cfg.loss.proxy_teacher} "
                             f"({type(teacher).__name__}) has no decoder here; use a patch k-means teacher "
                             "(training/fit_proxy_teacher.py) or drop the weight.")
    adversarial = any(s.weights.adversarial or s.weights.feature_matching for s in stages)
    d = cfg.discriminator
    disc = build_discriminator(d.kind, width=d.width, num_layers=d.num_layers, norm=d.norm, periods=d.periods,
                               mpd_channels=d.mpd_channels, resolutions=d.resolutions,
                               mrd_channels=d.mrd_channels) if adversarial else None
    w_all = [s.weights for s in stages]
    mel = L.MelLoss(cfg.data.sample_rate, cfg.loss.mel_n_ffts, n_mels=cfg.loss.mel_n_mels).to(info.device) if any(w.mel for w in w_all) else None
    stft = L.MultiResolutionSTFTLoss(cfg.loss.stft_fft_sizes).to(info.device) if any(w.stft for w in w_all) else None
    perceptual = (L.build_perceptual(cfg.loss.perceptual_backbone, cfg.loss.perceptual_weights).to(info.device)
                  if any(w.perceptual for w in w_all) else None)
    log.info("model %s: %.2f M parameters (%s trainable); %d process(es) on %s, %s",
             type(model).__name__, model.num_parameters() / 1e6,
             f"{sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6:.2f} M", info.world_size,
             info.device, precision)

    model, opt_g, sched_g, scaler_g = prepare(model, cfg.train, cfg.optim, info, precision,
                                              forward_methods=family.fsdp_forward_methods)
    models, optimizers, schedulers, scalers = {"model": model}, {"model": (model, opt_g)}, {"model": sched_g}, {"model": scaler_g}
    if disc is not None:
        disc, opt_d, sched_d, scaler_d = prepare(disc, cfg.train, d.optim, info, precision)
        disc_inner = zd.unwrap(disc)
        models["discriminator"], optimizers["discriminator"] = disc, (disc, opt_d)
        schedulers["discriminator"], scalers["discriminator"] = sched_d, scaler_d
    if semantic is not None:  # the adapter: its own optimiser, stepped with the generator's scaler
        semantic, opt_s, sched_s, _ = prepare(semantic, cfg.train, cfg.optim, info, precision)
        models["semantic"], optimizers["semantic"], schedulers["semantic"] = semantic, (semantic, opt_s), sched_s

    def generator_loss(stage: Stage, use_d: bool, fakes: list, tok, item):
        """tok: the unwrapped model; this runs as the wrapped model's forward (zd.loss_forward), passes included."""
        w = stage.weights
        x, text = item
        proxy_terms = {}
        if w.proxy or w.proxy_render or w.proxy_decode:
            out = family.proxy_forward(tok, x, proxy_ids=teacher(x) if w.proxy or w.proxy_render else None,
                                       proxy_decoder=teacher.decode if w.proxy_decode else None, render=needs_recon(w),
                                       continuous=stage.continuous)
            out.losses = dict(out.losses)
            proxy_terms = {k: out.losses.pop(k) for k in ("proxy", "proxy_render", "proxy_decode") if k in out.losses}
        else:
            forward = partial(family.continuous_forward, tok) if stage.continuous else tok.forward
            out = forward(**x) if isinstance(x, dict) else forward(x)
        t = {k: getattr(w, k) * v for k, v in proxy_terms.items() if getattr(w, k)}
        t.update(L.reconstruction_terms(w, out.recon, x, stft=stft, mel=mel, perceptual=perceptual))
        if out.losses and w.quantizer:
            t["quantizer"] = L.sum_losses(out.losses, w.quantizer)
        if w.semantic:
            t["semantic"] = w.semantic * semantic(out.features, out.feature_lengths, text, lm)
        if use_d:
            logits, feats = disc_inner(out.recon)
            if w.adversarial:
                t["adversarial"] = w.adversarial * L.generator_loss(logits, cfg.loss.adversarial)
            if w.feature_matching:
                with torch.no_grad():
                    _, real_feats = disc_inner(x)
                t["feature_matching"] = w.feature_matching * L.feature_matching_loss(real_feats, feats)
        loss = sum(t.values())
        if out.recon is not None:
            fakes.append(out.recon.detach())
        own = {}
        if isinstance(x, dict):  # 3D: log the model's own loss terms one by one
            own = {f"model/{k}": v for k, v in {**out.losses, **out.metrics}.items() if v.dim() == 0}
        return loss, {**t, **own, "loss": loss}

    def discriminator_loss(item):
        x, fake = item
        logits, _ = disc(torch.cat([x, fake]))  # one forward: [real; fake] along the batch
        n = x.shape[0]
        d_loss = L.discriminator_loss([l[:n] for l in logits], [l[n:] for l in logits], cfg.loss.adversarial)
        return d_loss, {"disc_loss": d_loss}

    def step(i, next_batch):
        stage = stage_at(stages, i)
        w = stage.weights
        use_d = disc is not None and (w.adversarial > 0 or w.feature_matching > 0)
        micro, texts = zip(*(split_text(next_batch()) for _ in range(accum)))
        micro = [to_device(x, info.device) for x in micro]

        # generator (the discriminator's own gradients from this pass are discarded below)
        opt_g.zero_grad(set_to_none=True)
        if semantic is not None:
            opt_s.zero_grad(set_to_none=True)
        fakes = []
        terms = accumulate([model, semantic], zip(micro, texts), accum,
                           zd.loss_forward(model, partial(generator_loss, stage, use_d, fakes)), scaler_g, precision, info)
        scaler_g.unscale_(opt_g)
        terms["grad_norm"] = float(zd.clip_grad_norm(model, clip))
        scaler_g.step(opt_g)
        if w.semantic:
            scaler_g.unscale_(opt_s)
            zd.clip_grad_norm(semantic, clip)
            scaler_g.step(opt_s)
            sched_s.step()
        scaler_g.update()
        sched_g.step()

        # discriminator, on real and detached generated batches
        if use_d:
            opt_d.zero_grad(set_to_none=True)  # drops what the generator's pass left in it
            terms.update(accumulate([disc], zip(micro, fakes), accum, discriminator_loss, scaler_d, precision, info))
            update(disc, opt_d, sched_d, scaler_d, clip)
        return terms

    return fit(cfg, info, log, step, models=models, optimizers=optimizers, schedulers=schedulers, scalers=scalers,
               training=f"train_autoencoder.py, {cfg.train.steps} steps, {info.world_size} process(es).")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: train_autoencoder.py RECIPE.yaml [section.key=value ...]")
    main(read_recipe(ProgramConfig, sys.argv[1], sys.argv[2:], program="train_autoencoder"))
