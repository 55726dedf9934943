"""XY-Tokenizer speed: real-time factor of encode / decode for 10 s clips at batch 1 and 8, for the
tiny config and the released 16 kHz size (random weights), with peak memory and achieved GFLOP/s as a
fraction of a matmul peak measured in the same run.

    PYTHONPATH=. python benchmarks/bench_xy_tokenizer.py                      # tiny + released, B=1,8
    PYTHONPATH=. python benchmarks/bench_xy_tokenizer.py --sizes released --batches 1 --full-window

Timing protocol as shared/research/perf_official.md: 2 threads, fp32, inference mode, one untimed
warm-up, min of --repeats timed calls. --full-window also times upstream's 30 s padding (same codes).
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

import torch

from zoo.tokenizers.xy_tokenizer import TINY_CONFIG, XYTokenizer, XYTokenizerConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402


def plain_copy(model: XYTokenizer) -> XYTokenizer:
    """A copy with the weight-norm parametrizations folded (FlopCounterMode cannot trace them)."""
    from torch.nn.utils import parametrize

    m = XYTokenizer(model.cfg).eval()  # a fresh build: deepcopy would share the parametrized classes
    m.load_state_dict(model.state_dict())
    for mod in (m.quantizer_in, m.quantizer_out):
        parametrize.remove_parametrizations(mod, "weight")
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="tiny,released")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--full-window", action="store_true", help="also time upstream's 30 s window padding")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    peak = timing.matmul_peak("cpu")
    print(f"matmul peak (2048^2 fp32, {args.threads} threads): {peak:.0f} GFLOP/s")
    configs = {"tiny": TINY_CONFIG, "released": XYTokenizerConfig()}
    rows = []
    for size in args.sizes.split(","):
        model = XYTokenizer(configs[size]).eval()
        sr = model.sample_rate
        counted = plain_copy(model)
        for b in (int(x) for x in args.batches.split(",")):
            x = 0.1 * torch.randn(b, 1, int(args.seconds * sr), generator=torch.Generator().manual_seed(0))
            modes = [False, True] if args.full_window else [False]
            for full in modes:
                tokens = model.encode(x, sample_rate=sr, full_window=full)
                t_enc = timing.best_of(lambda: model.encode(x, sample_rate=sr, full_window=full), "cpu", args.repeats)
                f_enc = timing.flops(lambda: counted.encode(x, sample_rate=sr, full_window=full))
                label = f"{size}{' (30 s pad)' if full else ''}"
                if not full:
                    t_dec = timing.best_of(lambda: model.decode(tokens), "cpu", args.repeats)
                    f_dec = timing.flops(lambda: counted.decode(tokens))
                else:
                    t_dec = f_dec = float("nan")
                audio_s = b * args.seconds
                rows.append((label, b, model.num_parameters() / 1e6, t_enc, t_enc / audio_s, t_dec, t_dec / audio_s,
                             f_enc / t_enc / 1e9 / peak, f_dec / t_dec / 1e9 / peak))
                print(f"  done {label} B={b}", flush=True)
        del model, counted
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"\n{args.seconds:g} s clips, fp32, {args.threads} threads; peak RSS of the process {rss:.2f} GB")
    print("| config | B | params M | encode s | RTF enc | decode s | RTF dec | enc peak frac | dec peak frac |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| {} | {} | {:.1f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.2f} | {:.2f} |".format(*r))


if __name__ == "__main__":
    main()
