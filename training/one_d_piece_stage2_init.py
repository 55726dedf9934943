"""Start One-D-Piece / TiTok stage 2 from your own stage 1: a zoo model folder holding the stage-1
weights, with the proxy codebook and the pixel decoder replaced by the MaskGIT-VQGAN teacher's
codebook and decoder. Train stage 2 from it with `model.init_from: <that folder>`.

Upstream's stage 2 (1d-tokenizer `create_model_and_loss_module`, `finetune_decoder: True`) loads the stage-1
checkpoint and adds the teacher file's `quantize.*` and `decoder.*` keys under `pixel_quantize.*` /
`pixel_decoder.*` (the encoder's keys are left out); the ViT decoder then learns to predict those codes'
soft mixture and the pixel decoder starts as a trained image decoder. Here the same keys go through
One-D-Piece's converter (`pixel_quantize.embedding.weight` -> `proxy_codebook`; `pixel_decoder.*` as is),
strictly: every proxy / pixel-decoder tensor of the stage-1 model must be replaced, with its shape.

    python training/one_d_piece_stage2_init.py runs/one_d_piece/s256-stage1/final \
        --teacher maskgit-vqgan-imagenet-f16-256.bin --out runs/one_d_piece/s256-stage2-init

--teacher: the official file (fun-research/TiTok, a torch pickle of tensors read with weights_only=True) or the
same keys as safetensors. A patch k-means stand-in (training/fit_proxy_teacher.py) has no decoder and cannot start
stage 2; the tiny CPU recipe trains one in stage 1 instead (stage weight `proxy_render`).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from torch import Tensor

import zoo
from zoo.hub import read_checkpoint
from zoo.tokenizers.one_d_piece import OneDPiece, remap_state_dict
from zoo.train.proxy import _few

TEACHER_PREFIXES = ("quantize.", "decoder.")  # upstream keeps these, and drops encoder.*


def stage2_weights(model: OneDPiece, teacher: Mapping[str, Tensor], source: str = "the teacher") -> dict[str, Tensor]:
    """{our key: tensor} for every proxy-codebook and pixel-decoder tensor of `model`, from the teacher's keys."""
    official = {"pixel_" + k: v for k, v in teacher.items() if k.startswith(TEACHER_PREFIXES)}
    if not any(k.startswith("pixel_decoder.") for k in official):
        raise ValueError(f"{source} has no decoder.* keys: stage 2 starts its pixel decoder from the MaskGIT-VQGAN "
                         "decoder (a patch k-means stand-in teacher has none).")
    ours = remap_state_dict(official)
    target = {k: v.shape for k, v in model.state_dict().items() if k == "proxy_codebook" or k.startswith("pixel_decoder.")}
    missing = [k for k in target if k not in ours]
    unexpected = [k for k in ours if k not in target]
    wrong = [f"{k} {list(ours[k].shape)} (model: {list(s)})" for k, s in target.items() if k in ours and ours[k].shape != s]
    if missing or unexpected or wrong:
        parts = [f"{label} ({len(keys)}): {_few(keys)}" for label, keys in
                 (("missing", missing), ("unexpected", unexpected), ("wrong shapes", wrong)) if keys]
        raise ValueError(f"{source} does not fit the stage-1 model's proxy codebook / pixel decoder ("
                         f"proxy_codebook_size={model.cfg.proxy_codebook_size}, proxy_dim={model.cfg.proxy_dim}, "
                         f"pixel_channels={model.cfg.pixel_channels}, pixel_channel_mult={list(model.cfg.pixel_channel_mult)}): "
                         + "; ".join(parts) + ".")
    return {k: ours[k].to(model.state_dict()[k].dtype) for k in target}


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("stage1", help="stage-1 model: a zoo folder (runs/.../final) or a catalogue name")
    ap.add_argument("--teacher", required=True, help="MaskGIT-VQGAN state dict (.bin / .pt / .safetensors)")
    ap.add_argument("--out", required=True, help="output zoo folder (stage 2's model.init_from)")
    args = ap.parse_args(argv)
    model = zoo.load(args.stage1)
    if not isinstance(model, OneDPiece):
        raise SystemExit(f"{args.stage1} is a {model.family} model; this program starts One-D-Piece stage 2.")
    teacher, _ = read_checkpoint(args.teacher)  # safetensors or torch.load(weights_only=True): no code runs
    new = stage2_weights(model, teacher, source=str(args.teacher))
    model.load_state_dict(new, strict=False)
    out = model.save_pretrained(args.out)
    print(f"wrote {out}: {len(new)} proxy-codebook / pixel-decoder tensors from {args.teacher}, the rest from {args.stage1}")
    return Path(out)


if __name__ == "__main__":
    main()
