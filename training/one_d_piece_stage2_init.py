"""Start One-D-Piece / TiTok stage 2 from your own stage 1: a zoo model folder holding the stage-1
weights, with the proxy codebook and the pixel decoder replaced by the MaskGIT-VQGAN teacher's
codebook and decoder. Train stage 2 from it with `model.init_from: <that folder>`.

Upstream's stage 2 (1d-tokenizer `create_model_and_loss_module`, `finetune_decoder: True`) loads the stage-1
checkpoint and adds the teacher file's `quantize.*` and `decoder.*` keys under `pixel_quantize.*` /
`pixel_decoder.*` (the encoder's keys are left out); the ViT decoder then learns to predict those codes'
soft mixture and the pixel decoder starts as a trained image decoder. Here the same keys go through
One-D-Piece's converter (`maskgit_vqgan_stage2_state`: `proxy_codebook`, `pixel_decoder.*`) and zoo.hub's strict
check: every proxy / pixel-decoder tensor of the stage-1 model must be replaced, with its shape.

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
from zoo.hub import load_state_dict_strict, read_checkpoint
from zoo.tokenizers.one_d_piece import OneDPiece, maskgit_vqgan_stage2_state

STAGE2_PARTS = ("proxy_codebook", "pixel_decoder.")  # what stage 2 takes from the teacher; the rest is stage 1's


def load_stage2_weights(model: OneDPiece, teacher: Mapping[str, Tensor], source: str = "the teacher") -> int:
    """Replace `model`'s proxy codebook and pixel decoder by the teacher's codebook and decoder, strictly (every
    such tensor given with its shape, nothing else); -> how many tensors were replaced."""
    new = maskgit_vqgan_stage2_state(teacher, source)
    c = model.cfg
    load_state_dict_strict(model, new, source=f"{source} (codebook and decoder as stage 2's)", within=STAGE2_PARTS,
                           hint=f"The stage-1 model has proxy_codebook_size={c.proxy_codebook_size}, proxy_dim={c.proxy_dim}, "
                                f"pixel_channels={c.pixel_channels}, pixel_channel_mult={list(c.pixel_channel_mult)}.")
    return len(new)


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
    n = load_stage2_weights(model, teacher, source=str(args.teacher))
    out = model.save_pretrained(args.out)
    print(f"wrote {out}: {n} proxy-codebook / pixel-decoder tensors from {args.teacher}, the rest from {args.stage1}")
    return Path(out)


if __name__ == "__main__":
    main()
