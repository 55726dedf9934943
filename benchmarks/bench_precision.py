"""Our fp32 and bf16 against the official code's fp32 times, released-size configs, random weights.

    PYTHONPATH=. python benchmarks/bench_precision.py --models wavtokenizer-small-40tps --batches 1 8
    PYTHONPATH=. python benchmarks/bench_precision.py --models flextok-d12-d12-in1k selftok-512-renderer --batches 1
    PYTHONPATH=. python benchmarks/bench_precision.py --models selftok-512 --batches 1 --precisions bf16 --warmup 0 --repeats 2  # 50-step decode: minutes

The official times are those of ../shared/research/perf_official.md (2 threads, min of 3, an idle
machine whose 2048^2 fp32 matmul ran at 185 GFLOP/s). This run measures its own matmul peak (fp32 and
bf16) before and after the models: `vs official` divides the official time by ours; `norm.` also
scales by the ratio of the two machines' fp32 peaks, so that a loaded machine does not flatter or
punish us. Same input and seeded weights for every precision (one instance each); --warmup untimed calls
each (which also fill the bf16 weight copy, as a user's first call does), then --repeats rounds in which the
precisions take turns (a slow spell of a shared machine hits each alike); the minimum is reported.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402

# (catalogue name, batch) -> official (encode s, decode s), from shared/research/perf_official.md. Image
# families were timed there at batch 1 (One-D-Piece also 4): at batch 8 we compare items per second
# with the official batch-1 (or 4) rate, i.e. the official time x 8 (x 2).
OFFICIAL = {
    ("wavtokenizer-small-40tps", 1): (0.341, 0.332),
    ("wavtokenizer-small-40tps", 8): (4.78, 2.27),
    ("wavtokenizer-small-75tps", 1): (0.463, 0.569),
    ("wavtokenizer-small-75tps", 8): (7.28, 4.64),
    ("xy-tokenizer-16k", 1): (19.2, 11.3),  # a 30 s clip: two 30 s windows for both codes
    ("one-d-piece-s-256", 1): (0.204, 1.45),
    ("one-d-piece-s-256", 8): (0.752 * 2, 5.67 * 2),  # official batch 4, twice
    ("wetok-imagenet-f8", 1): (9.45, 13.5),
    ("wetok-imagenet-f16", 1): (6.32, 7.87),
    ("wetok-imagenet-f16", 8): (6.32 * 8, 7.87 * 8),
    ("flextok-d12-d12-in1k", 1): (2.29, 39.2),  # decode: 25 steps, CFG 7.5 with APG
    ("flextok-d12-d12-in1k", 8): (2.29 * 8, 39.2 * 8),
    ("selftok-512-renderer", 1): (0.800, 9.81),  # encode from an SD3 latent; decode: the one-step renderer
    ("selftok-512-renderer", 8): (0.800 * 8, 9.81 * 8),
    ("selftok-512", 1): (0.800, 10.56 * 50),  # decode: 50 flow steps; official extrapolated from one velocity call
    ("xy-tokenizer-16k", 8): (19.2 * 8, 11.3 * 8),
}
# Rows whose official time is a smaller batch's, scaled: said in the card.
SCALED = {(n, b): f"official: batch {4 if n.startswith('one-d-piece') else 1}, scaled to {b}"
          for (n, b) in OFFICIAL if b == 8 and not n.startswith("wavtokenizer")}
OFFICIAL_PEAK_GFLOPS = 185.0
# What the official run did, where our defaults differ: audio seconds, decode options.
SECONDS = {"xy-tokenizer-16k": 30.0}
DECODE_KWARGS = {"flextok-d12-d12-in1k": {"steps": 25, "guidance_scale": 7.5, "apg": True}}
LATENT_INPUT = {"selftok-512-renderer", "selftok-512"}
SETTING = {  # what a row measures, where the default ("10 s clip", "HxW images") does not say it
    "xy-tokenizer-16k": "30 s clip",
    "flextok-d12-d12-in1k": "256x256 images; decode 25 steps, CFG 7.5 + APG",
    "selftok-512-renderer": "encode from a 16x32x32 SD3 latent; decode with the one-step renderer",
    "selftok-512": "encode from a 16x32x32 SD3 latent; decode: 50-step flow sampler (official: 50 x its one timed "
                   "velocity call, 10.56 s; the official sampler also re-runs the encoder every step)",
}  # the official Selftok run starts from SD3 latents (its VAE is not part of it)


def encode_decode(tok, batch: int):
    """(encode(), decode(tokens)) callables on the input the official run used."""
    from zoo.pipelines.bench import bench_input, decode_kwargs

    name = tok.variant
    if name in LATENT_INPUT:
        s = tok.cfg.image_size // 8
        lat = torch.randn(batch, 16, s, s, generator=torch.Generator().manual_seed(0))

        def scoped(fn):
            def run(*a):
                with torch.inference_mode(), tok.autocast():
                    return fn(*a)
            return run

        decode = tok.render_latents if tok.cfg.decoder == "renderer" else tok.decode_latents
        return scoped(lambda: tok.encode_latents(lat)), scoped(decode)
    x, kw = bench_input(tok, batch, seconds=SECONDS.get(name, 10.0))
    dkw = DECODE_KWARGS.get(name, {})

    def decode(tokens):
        return tok.decode(tokens, **dkw, **decode_kwargs(tok))

    return (lambda: tok.encode(x, **kw)), decode


def main() -> int:
    from zoo import registry

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["wavtokenizer-small-40tps"])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per precision before the timed rounds")
    p.add_argument("--write", action="store_true",
                   help="record the rows that have official times in models/<family>/throughput.json (zoo cards shows them)")
    p.add_argument("--keep-freed-memory", action="store_true",
                   help="as the zoo CLI runs: zoo.runtime.keep_freed_cpu_memory() (the official times used glibc's default)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.keep_freed_memory:
        from zoo.runtime import keep_freed_cpu_memory

        print(f"freed memory kept for reuse (as the zoo CLI): {keep_freed_cpu_memory()}")
    peaks = [timing.matmul_peak("cpu"), timing.matmul_peak("cpu", torch.bfloat16)]
    print(f"matmul peak before: fp32 {peaks[0]:.0f} GFLOP/s, bf16 {peaks[1]:.0f} GFLOP/s (official run: fp32 185)")
    rows = []
    for name in args.models:
        spec, variant = registry.lookup(name)
        toks = {}
        for precision in args.precisions:  # one instance per precision, the same seeded weights
            torch.manual_seed(0)
            toks[precision] = spec.tokenizer(variant.config).eval()
            toks[precision].variant = name
            toks[precision].set_precision(precision)
        for b in args.batches:
            calls = {precision: encode_decode(tok, b) for precision, tok in toks.items()}
            for encode, decode in calls.values():  # warm-up: also fills the bf16 weight copy, as a user's first call
                for _ in range(args.warmup):
                    decode(encode())
            best = {precision: [float("inf")] * 2 for precision in calls}
            for _ in range(args.repeats):  # precisions take turns, so a slow spell of the machine hits each alike
                for precision, (encode, decode) in calls.items():
                    t0 = time.perf_counter()
                    tokens = encode()
                    t1 = time.perf_counter()
                    decode(tokens)
                    t2 = time.perf_counter()
                    enc, dec = best[precision]
                    best[precision] = [min(enc, t1 - t0), min(dec, t2 - t1)]
            for precision, (enc, dec) in best.items():
                rows.append((name, b, precision, enc, dec, OFFICIAL.get((name, b))))
                print(f"  measured {name} b{b} {precision}: encode {enc:.3f} s, decode {dec:.3f} s", flush=True)
        del toks, calls
    after = timing.matmul_peak("cpu")
    print(f"matmul peak after: fp32 {after:.0f} GFLOP/s")
    peak = (peaks[0] + after) / 2
    scale = peak / OFFICIAL_PEAK_GFLOPS  # >1: this machine was faster than the official run's
    print(f"\n{'model':<26} {'batch':>5} {'prec':<5} {'enc s':>8} {'dec s':>8} {'enc vs official':>16} {'dec vs official':>16} "
          f"{'enc norm.':>10} {'dec norm.':>10}")
    for name, b, prec, enc, dec, off in rows:
        if off:
            re, rd = off[0] / enc, off[1] / dec
            cols = f"{re:>15.2f}x {rd:>15.2f}x {re / scale:>9.2f}x {rd / scale:>9.2f}x"
        else:
            cols = f"{'-':>16} {'-':>16} {'-':>10} {'-':>10}"
        print(f"{name:<26} {b:>5} {prec:<5} {enc:>8.3f} {dec:>8.3f} {cols}")
    if args.write:
        write_rows([r for r in rows if r[5]], peak, " ".join(["python benchmarks/bench_precision.py", *sys.argv[1:]]),
                   args.keep_freed_memory)
    return 0


def write_rows(rows, peak: float, command: str, kept: bool = False, setting: str | None = None,
               official_in_same_run: bool = False) -> None:
    """Merge rows into models/<family>/throughput.json, replacing earlier rows of the same name, batch, precision
    and setting (`setting`: what the rows measure, where the default for the model does not say it)."""
    import datetime
    import json

    from zoo import registry
    from zoo.io import atomic_write_text

    date = datetime.date.today().isoformat()
    for name, b, prec, enc, dec, off in rows:
        spec, variant = registry.lookup(name)
        side = getattr(variant.config, "image_size", None)
        default = "10 s clip" if spec.tokenizer.modality == "audio" else f"{side}x{side} images"
        row_setting = setting or SETTING.get(name, default) + (f"; {SCALED[name, b]}" if (name, b) in SCALED else "")
        row_setting += "; freed memory kept for reuse, as the zoo CLI runs" if kept else ""
        path = Path(__file__).resolve().parents[1] / "models" / spec.name / "throughput.json"
        data = json.loads(path.read_text()) if path.is_file() else {}
        row = {"batch": b, "precision": prec, "encode_s": round(enc, 4), "decode_s": round(dec, 4),
               "official_encode_s": off[0], "official_decode_s": off[1], "matmul_gflops": round(peak, 1),
               "setting": row_setting, "date": date, "command": command}
        if official_in_same_run:
            row["official_in_same_run"] = True
        rows_of = data.setdefault(name, [])
        same = [i for i, r in enumerate(rows_of) if (r["batch"], r["precision"], r["setting"]) == (b, prec, row_setting)]
        if same:  # in place: the file keeps its order
            rows_of[same[0]] = row
            rows_of[:] = [r for i, r in enumerate(rows_of) if i not in same[1:]]
        else:
            rows_of.append(row)
        atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
