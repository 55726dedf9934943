"""One-D-Piece through the training program: two steps of recipes/_smoke/one_d_piece.yaml, then a
decoder-only fine-tune (encoder, quantizer and latent tokens frozen, as upstream stage 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo

REPO = Path(__file__).resolve().parents[2]
PROGRAM = REPO / "training" / "train_autoencoder.py"
SMOKE = REPO / "recipes" / "_smoke" / "one_d_piece.yaml"


def _train(*overrides: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(PROGRAM), str(SMOKE), *overrides], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow  # two processes of a few CPU seconds each; a minute or more on a loaded machine
def test_smoke_two_steps_then_frozen_encoder_finetune(tmp_path):
    from zoo.media import save_image

    for i in range(3):
        save_image(tmp_path / "imgs" / f"{i}.png", torch.rand(3, 44, 52, generator=torch.Generator().manual_seed(i)))
    _train(f"data.paths=[{tmp_path / 'imgs'}]", f"train.run_dir={tmp_path / 'a'}")
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and "adversarial" in rows[1]
    first = zoo.load(tmp_path / "a" / "final")
    assert first.family == "one_d_piece" and first.decode(first.encode(torch.rand(1, 3, 32, 32))[:, :3]).shape == (1, 3, 32, 32)

    _train(f"data.paths=[{tmp_path / 'imgs'}]", f"train.run_dir={tmp_path / 'b'}", "train.steps=1",
           f"model.init_from={tmp_path / 'a' / 'final'}", "model.freeze=[encoder,quantizer]", "model.family=null",
           "model.config={}")
    tuned = zoo.load(tmp_path / "b" / "final")
    before, after = first.state_dict(), tuned.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and not {k for k in changed if k.startswith(("encoder.", "quantizer."))}
    assert "encoder.latent_tokens" in before and "encoder.latent_tokens" not in changed


# -- stage 2's start: the MaskGIT-VQGAN teacher's codebook and decoder in a stage-1 model (training/one_d_piece_stage2_init.py)
def _teacher_file(model, path: Path, seed: int) -> dict[str, torch.Tensor]:
    """A teacher in upstream's PretrainedTokenizer layout whose decoder fits `model`: its own random pixel decoder
    and proxy codebook under `decoder.*` / `quantize.embedding.weight`, plus an encoder key (left out by stage 2)."""
    from zoo.tokenizers.one_d_piece import OneDPiece

    torch.manual_seed(seed)
    other = OneDPiece(model.cfg).state_dict()
    sd = {"decoder." + k[len("pixel_decoder."):]: v for k, v in other.items() if k.startswith("pixel_decoder.")}
    sd["quantize.embedding.weight"] = other["proxy_codebook"]
    sd["encoder.conv_in.weight"] = torch.randn(8, 3, 3, 3)
    torch.save(sd, path)
    return sd


def test_stage2_init_takes_the_teachers_decoder_and_keeps_the_rest(tmp_path):
    import runpy

    from zoo.tokenizers.one_d_piece import TINY_TEST, OneDPiece

    torch.manual_seed(0)
    stage1 = OneDPiece(TINY_TEST)
    stage1.save_pretrained(tmp_path / "stage1")
    teacher = _teacher_file(stage1, tmp_path / "maskgit-vqgan.bin", seed=1)
    script = runpy.run_path(str(REPO / "training" / "one_d_piece_stage2_init.py"), run_name="stage2_init")
    out = script["main"]([str(tmp_path / "stage1"), "--teacher", str(tmp_path / "maskgit-vqgan.bin"), "--out", str(tmp_path / "s2")])
    got, before = zoo.load(out).state_dict(), stage1.state_dict()
    assert torch.equal(got["proxy_codebook"], teacher["quantize.embedding.weight"])
    pixel = [k for k in got if k.startswith("pixel_decoder.")]
    assert pixel and all(torch.equal(got[k], teacher["decoder." + k[len("pixel_decoder."):]]) for k in pixel)
    rest = [k for k in got if k != "proxy_codebook" and not k.startswith("pixel_decoder.")]
    assert rest and all(torch.equal(got[k], before[k]) for k in rest)

    # a teacher of another width, or one without a decoder (the patch k-means stand-in), is refused by name
    wide = OneDPiece(type(TINY_TEST)(**{**TINY_TEST.__dict__, "pixel_channels": 2 * TINY_TEST.pixel_channels}))
    _teacher_file(wide, tmp_path / "wide.bin", seed=2)
    with pytest.raises(ValueError, match=r"(?s)wide\.bin .*does not match OneDPiece \(its proxy_codebook\*, pixel_decoder\.\*\)"
                                         r".*shape mismatches .*pixel_decoder\.conv_in\.weight.*The stage-1 model has proxy_codebook_size="):
        script["main"]([str(tmp_path / "stage1"), "--teacher", str(tmp_path / "wide.bin"), "--out", str(tmp_path / "bad")])
    torch.save({k: v for k, v in teacher.items() if not k.startswith("decoder.")}, tmp_path / "nodecoder.bin")
    with pytest.raises(ValueError, match="no decoder"):
        script["main"]([str(tmp_path / "stage1"), "--teacher", str(tmp_path / "nodecoder.bin"), "--out", str(tmp_path / "bad")])
    assert not (tmp_path / "bad").exists()
