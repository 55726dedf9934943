"""WavTokenizer against the official code, side by side in one process, on the same weights.

    PYTHONPATH=. python benchmarks/bench_official_wavtokenizer.py --official-src /path/to/WavTokenizer
    PYTHONPATH=. python benchmarks/bench_official_wavtokenizer.py --official-src ... --configs 75 --batches 1 8 --write

--official-src: a checkout of github.com/jishengpeng/WavTokenizer (timed at commit 5cf440d); its code is
imported from there, never copied here. The official model is built from its released config
(`WavTokenizer.from_hparams0802`, seeded weights, random codebook, as shared/research/perf_official.md),
saved as an official-layout checkpoint and converted with `zoo.convert`: our fp32 and bf16 models hold
its weights. Each round times official encode / decode, then ours in fp32, then in bf16 (a slow spell of
a shared machine hits all three alike); the minimum over rounds after the first is reported. fp32 ids
must equal the official codes (checked every run). 10 s clips at 24 kHz, 2 threads.
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

CONFIGS = {"40": "wavtokenizer_smalldata_frame40_3s_nq1_code4096_dim512_kmeans200_attn.yaml",
           "75": "wavtokenizer_smalldata_frame75_3s_nq1_code4096_dim512_kmeans200_attn.yaml"}
SETTING = "10 s clip; official code timed side by side in the same run, same weights"


def official_model(src: Path, config: Path):
    """The official WavTokenizer from its yaml: seeded weights, the codebook random and marked initialised."""
    sys.path.insert(0, str(src))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its deprecated weight_norm
        from decoder.pretrained import WavTokenizer as Official

        torch.manual_seed(0)
        model = Official.from_hparams0802(str(config)).eval()
    for name, buf in model.named_buffers():
        if name.endswith("embed"):
            buf.copy_(torch.randn(buf.shape, generator=torch.Generator().manual_seed(1)))
        elif name.endswith("inited"):
            buf.fill_(1)
    return model


def ours_from(model, config: Path, precisions: list[str]) -> dict:
    """Our model per precision, converted from the official model's weights (an official-layout .ckpt)."""
    import zoo

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "official.ckpt"
        torch.save({"state_dict": model.state_dict()}, ckpt)
        out = {}
        for precision in precisions:
            tok = zoo.convert("wavtokenizer", checkpoint=ckpt, config=config)
            tok.set_precision(precision)
            out[precision] = tok
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--official-src", type=Path, required=True, help="a checkout of jishengpeng/WavTokenizer")
    p.add_argument("--configs", nargs="+", default=["75", "40"], choices=sorted(CONFIGS), help="tokens per second")
    p.add_argument("--batches", type=int, nargs="+", default=[1])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--repeats", type=int, default=8, help="timed rounds (plus one untimed)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--write", action="store_true", help="record the rows in models/wavtokenizer/throughput.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    peak = timing.matmul_peak("cpu")
    print(f"matmul peak before: fp32 {peak:.0f} GFLOP/s")
    rows = []
    for rate in args.configs:
        config = args.official_src / "configs" / CONFIGS[rate]
        official = official_model(args.official_src, config)
        ours = ours_from(official, config, args.precisions)
        name = f"wavtokenizer-small-{rate}tps"
        for b in args.batches:
            x = 0.1 * torch.randn(b, 24000 * 10, generator=torch.Generator().manual_seed(0))
            bandwidth = torch.tensor([0])

            def run_official():
                with torch.inference_mode():
                    t0 = time.perf_counter()
                    features, codes = official.encode_infer(x, bandwidth_id=bandwidth)
                    t1 = time.perf_counter()
                    official.decode(features, bandwidth_id=bandwidth)
                    return t1 - t0, time.perf_counter() - t1, codes[0]

            def run_ours(tok):
                t0 = time.perf_counter()
                tokens = tok.encode(x[:, None], sample_rate=24000)
                t1 = time.perf_counter()
                tok.decode(tokens)
                return t1 - t0, time.perf_counter() - t1, tokens.ids

            runs = {"official": run_official, **{prec: (lambda tok=tok: run_ours(tok)) for prec, tok in ours.items()}}
            best = {k: [float("inf")] * 2 for k in runs}
            ids = {}
            for r in range(args.repeats + 1):
                for k, run in runs.items():
                    enc, dec, ids[k] = run()
                    if r:  # the first round warms up (and fills the bf16 weight copy, as a user's first call)
                        best[k] = [min(best[k][0], enc), min(best[k][1], dec)]
            if "fp32" in ids and not torch.equal(ids["fp32"], ids["official"]):
                print(f"ERROR: {name} b{b}: our fp32 ids differ from the official codes", file=sys.stderr)
                return 1
            off_enc, off_dec = best["official"]
            print(f"{name} b{b}: official encode {off_enc:.3f} s, decode {off_dec:.3f} s; fp32 ids equal to the official codes")
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

        command = " ".join(["python benchmarks/bench_official_wavtokenizer.py", *sys.argv[1:]])
        write_rows(rows, (peak + after) / 2, command.replace(str(args.official_src), "<WavTokenizer checkout>"),
                   setting=SETTING, official_in_same_run=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
