"""Ours against the official code, side by side in one process, on the same weights.

    PYTHONPATH=. python benchmarks/bench_official.py wavtokenizer --official-src /path/to/WavTokenizer
    PYTHONPATH=. python benchmarks/bench_official.py wavtokenizer --official-src ... --configs 75 40 --batches 1 8 --write
    PYTHONPATH=. python benchmarks/bench_official.py one-d-piece --official-src /path/to/One-D-Piece --batches 1 8

--official-src: a checkout of the official repository (github.com/jishengpeng/WavTokenizer, timed at commit
5cf440d; github.com/turingmotors/One-D-Piece at 473665d, whose code also needs `omegaconf`). Its code is
imported from there, never copied here. The official model is built from its released config with seeded
weights (WavTokenizer: a random codebook marked initialised, as shared/research/perf_official.md), saved as
an official-layout checkpoint and converted with `zoo.convert`: our fp32 and bf16 models hold its weights.
Each round times official encode / decode, then ours in fp32, then in bf16 (a slow spell of a shared machine
hits all three alike); the minimum over the rounds after the first is reported. Our fp32 ids must equal the
official ids (checked every run). Inputs as perf_official.md: 10 s clips at 24 kHz, 256 x 256 images; 2 threads.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402

SETTING = "official code timed side by side in the same run, same weights"


class WavTokenizerSide:
    """WavTokenizer: `WavTokenizer.from_hparams0802(yaml)`; encode = `encode_infer`, decode = `decode(features)`."""

    family, default_configs = "wavtokenizer", ["75", "40"]
    configs = {"40": "configs/wavtokenizer_smalldata_frame40_3s_nq1_code4096_dim512_kmeans200_attn.yaml",
               "75": "configs/wavtokenizer_smalldata_frame75_3s_nq1_code4096_dim512_kmeans200_attn.yaml"}
    setting = "10 s clip"

    def name(self, config: str) -> str:
        return f"wavtokenizer-small-{config}tps"

    def build(self, src: Path, config: str):
        from decoder.pretrained import WavTokenizer as Official

        torch.manual_seed(0)
        model = Official.from_hparams0802(str(src / self.configs[config])).eval()
        for name, buf in model.named_buffers():
            if name.endswith("embed"):
                buf.copy_(torch.randn(buf.shape, generator=torch.Generator().manual_seed(1)))
            elif name.endswith("inited"):
                buf.fill_(1)
        return model

    def checkpoint(self, model, folder: Path) -> Path:  # the released .ckpt layout
        path = folder / "official.ckpt"
        torch.save({"state_dict": model.state_dict()}, path)
        return path

    def inputs(self, batch: int) -> tuple[torch.Tensor, dict]:
        x = 0.1 * torch.randn(batch, 1, 24000 * 10, generator=torch.Generator().manual_seed(0))
        return x, {"sample_rate": 24000}

    def run_official(self, model, x: torch.Tensor):
        bandwidth = torch.tensor([0])
        t0 = time.perf_counter()
        features, codes = model.encode_infer(x[:, 0], bandwidth_id=bandwidth)
        t1 = time.perf_counter()
        model.decode(features, bandwidth_id=bandwidth)
        return t1 - t0, time.perf_counter() - t1, codes[0]


class OneDPieceSide:
    """One-D-Piece: `OneDPiece(OmegaConf.load(yaml))`; encode = `encode(x)`, decode = `decode_tokens(ids)`."""

    family, default_configs = "one_d_piece", ["s256"]
    configs = {"s256": "configs/one-d-piece_s256.yaml"}
    setting = "256x256 images"

    def name(self, config: str) -> str:
        return "one-d-piece-s-256"

    def build(self, src: Path, config: str):
        from modeling.one_d_piece import OneDPiece
        from omegaconf import OmegaConf

        torch.manual_seed(0)
        return OneDPiece(OmegaConf.load(str(src / self.configs[config]))).eval()

    def checkpoint(self, model, folder: Path) -> Path:  # the released safetensors layout
        from safetensors.torch import save_file

        path = folder / "model.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
        return path

    def inputs(self, batch: int) -> tuple[torch.Tensor, dict]:
        return torch.rand(batch, 3, 256, 256, generator=torch.Generator().manual_seed(0)), {}

    def run_official(self, model, x: torch.Tensor):
        t0 = time.perf_counter()
        _, info = model.encode(x)
        t1 = time.perf_counter()
        ids = info["min_encoding_indices"]  # [B, 1, N]
        model.decode_tokens(ids)
        return t1 - t0, time.perf_counter() - t1, ids[:, 0]


SIDES = {"wavtokenizer": WavTokenizerSide(), "one-d-piece": OneDPieceSide()}


def ours_from(side, model, src: Path, config: str, precisions: list[str]) -> dict:
    """Our model per precision, converted from the official model's weights."""
    import zoo

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = side.checkpoint(model, Path(tmp))
        return {p: zoo.convert(side.family, checkpoint=ckpt, config=src / side.configs[config]).set_precision(p)
                for p in precisions}


def run_ours(tok, x: torch.Tensor, kw: dict):
    t0 = time.perf_counter()
    tokens = tok.encode(x, **kw)
    t1 = time.perf_counter()
    tok.decode(tokens)
    return t1 - t0, time.perf_counter() - t1, tokens.ids


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("family", choices=sorted(SIDES))
    p.add_argument("--official-src", type=Path, required=True, help="a checkout of the official repository")
    p.add_argument("--configs", nargs="+", help="WavTokenizer: 75 and / or 40 (tokens per second); One-D-Piece: s256")
    p.add_argument("--batches", type=int, nargs="+", default=[1])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--repeats", type=int, default=8, help="timed rounds (plus one untimed)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--write", action="store_true", help="record the rows in models/<family>/throughput.json")
    args = p.parse_args()
    side = SIDES[args.family]
    configs = args.configs or side.default_configs
    if unknown := [c for c in configs if c not in side.configs]:
        p.error(f"{args.family} configs are {', '.join(side.configs)}; got {', '.join(unknown)}")
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(args.official_src.resolve()))
    peak = timing.matmul_peak("cpu")
    print(f"matmul peak before: fp32 {peak:.0f} GFLOP/s")
    rows = []
    for config in configs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the official code's deprecation warnings
            official = side.build(args.official_src, config)
        ours = ours_from(side, official, args.official_src, config, args.precisions)
        name = side.name(config)
        for b in args.batches:
            x, kw = side.inputs(b)
            runs = {"official": lambda: side.run_official(official, x),
                    **{prec: (lambda tok=tok: run_ours(tok, x, kw)) for prec, tok in ours.items()}}
            best = {k: [float("inf")] * 2 for k in runs}
            ids = {}
            with torch.inference_mode():
                for r in range(args.repeats + 1):
                    for k, run in runs.items():
                        enc, dec, ids[k] = run()
                        if r:  # the first round warms up (and fills the bf16 weight copy, as a user's first call)
                            best[k] = [min(best[k][0], enc), min(best[k][1], dec)]
            if "fp32" in ids and not torch.equal(ids["fp32"], ids["official"]):
                print(f"ERROR: {name} b{b}: our fp32 ids differ from the official ids", file=sys.stderr)
                return 1
            off_enc, off_dec = best["official"]
            print(f"{name} b{b}: official encode {off_enc:.3f} s, decode {off_dec:.3f} s; our fp32 ids equal the official ids")
            for prec in ours:
                enc, dec = best[prec]
                agree = float((ids[prec] == ids["official"]).float().mean())
                print(f"  ours {prec}: encode {enc:.3f} s ({off_enc / enc:.2f}x), decode {dec:.3f} s ({off_dec / dec:.2f}x), "
                      f"ids equal to official {agree:.1%}", flush=True)
                rows.append((name, b, prec, enc, dec, (round(off_enc, 4), round(off_dec, 4))))
        del official, ours
    after = timing.matmul_peak("cpu")
    print(f"matmul peak after: fp32 {after:.0f} GFLOP/s")
    if args.write:
        from bench_precision import write_rows

        command = " ".join(["python benchmarks/bench_official.py", *sys.argv[1:]])
        write_rows(rows, (peak + after) / 2, command.replace(str(args.official_src), "<official checkout>"),
                   setting=f"{side.setting}; {SETTING}", official_in_same_run=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
