"""WavTokenizer speed and memory: encode / decode of 10 s clips at batch 1 and 8.

    PYTHONPATH=. python benchmarks/bench_wavtokenizer.py                      # tiny + small-40tps, batch 1 and 8
    PYTHONPATH=. python benchmarks/bench_wavtokenizer.py --configs small-75tps --batches 1 --dtype bfloat16

Random weights (speed does not depend on them). Each (config, batch) runs in its own process so the
peak RSS is that case's. Times are the minimum of --repeats calls after one warm-up. A 2048x2048
fp32 matmul is timed in the same run: GFLOP/s are given as a fraction of it, and the comparison
with the official code (timed on an idle machine whose matmul peak was 185 GFLOP/s, see
shared/research/perf_official.md) is also shown normalised by the ratio of the two peaks, so a
loaded machine does not make the ratio meaningless.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

SR = 24000
# Official WavTokenizer (commit 5cf440d), 10 s clip, 2 threads, fp32, idle machine; min of 3 (seconds).
OFFICIAL = {
    ("small-40tps", 1): (0.341, 0.332),
    ("small-40tps", 8): (4.78, 2.27),
    ("small-75tps", 1): (0.463, 0.569),
    ("small-75tps", 8): (7.28, 4.64),
}
OFFICIAL_PEAK_GFLOPS = 185.0


def _config(name: str):
    from zoo.tokenizers import wavtokenizer as wt

    return {"tiny": wt.TINY_CONFIG, "small-40tps": wt.CONFIG_40TPS, "small-75tps": wt.CONFIG_75TPS}[name]


def matmul_peak(dtype=torch.float32, n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _timed_both(fn, repeats: int) -> tuple[float, float]:
    """(min wall seconds, min process CPU seconds) over `repeats` calls. CPU time barely moves when
    other processes load the machine, so it is the number to compare across runs."""
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus)


def _flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return float(counter.get_total_flops())


def run_case(config: str, batch: int, seconds: float, repeats: int, dtype: str) -> dict:
    from zoo.tokenizers.wavtokenizer import WavTokenizer

    torch.manual_seed(0)
    cfg = _config(config)
    model = WavTokenizer(cfg).eval().to(getattr(torch, dtype))
    model.quantizer.initialized.fill_(True)
    model.requires_grad_(False)  # inference only; also keeps FlopCounterMode's module hooks out of autograd
    x = 0.1 * torch.randn(batch, 1, int(seconds * SR))
    tokens = model.encode(x, sample_rate=SR)
    model.decode(tokens)  # warm-up
    enc, enc_cpu = _timed_both(lambda: model.encode(x, sample_rate=SR), repeats)
    dec, dec_cpu = _timed_both(lambda: model.decode(tokens), repeats)
    # the same encode with the whole batch in one pass through the encoder (as upstream runs it)
    chunk, model.encoder.chunk_elements = model.encoder.chunk_elements, 1 << 62
    one_pass, one_pass_cpu = _timed_both(lambda: model.encode(x, sample_rate=SR), repeats) if batch > 1 else (enc, enc_cpu)
    model.encoder.chunk_elements = chunk
    # the LSTM is not seen by the flop counter: add it (2 flops per MAC, 4 gates, input + recurrent)
    n_tok = tokens.ids.numel()
    lstm = 2 * n_tok * cfg.encoder_lstm_layers * 4 * cfg.encoder_dim * (2 * cfg.encoder_dim)
    enc_flops = _flops(lambda: model.encode(x, sample_rate=SR)) + lstm
    dec_flops = _flops(lambda: model.decode(tokens))
    return {
        "config": config, "batch": batch, "seconds": seconds, "dtype": dtype,
        "params_m": model.num_parameters() / 1e6, "tokens": tokens.ids.shape[-1],
        "encode_s": enc, "decode_s": dec, "encode_cpu_s": enc_cpu, "decode_cpu_s": dec_cpu,
        "encode_one_pass_s": one_pass, "encode_one_pass_cpu_s": one_pass_cpu, "enc_gflop": enc_flops / 1e9, "dec_gflop": dec_flops / 1e9,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default="tiny,small-40tps", help="comma list of tiny, small-40tps, small-75tps")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--case", default=None, help=argparse.SUPPRESS)  # internal: config,batch
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.case:  # child process: one case, JSON on stdout
        config, batch = args.case.split(",")
        print(json.dumps(run_case(config, int(batch), args.seconds, args.repeats, args.dtype)))
        return

    peak = matmul_peak()
    print(f"# WavTokenizer benchmark: {args.seconds:g} s clips, {args.threads} threads, {args.dtype}, torch {torch.__version__}")
    print(f"# matmul peak now: {peak:.0f} GFLOP/s fp32 (official run: {OFFICIAL_PEAK_GFLOPS:.0f}); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    rows = []
    for config in args.configs.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            cmd = [sys.executable, __file__, "--case", f"{config},{batch}", "--seconds", str(args.seconds),
                   "--repeats", str(args.repeats), "--threads", str(args.threads), "--dtype", args.dtype]
            out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
            if out.returncode:
                print(f"{config} batch {batch} failed:\n{out.stderr[-2000:]}")
                continue
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"# done {config} batch {batch}", flush=True)
    peak_after = matmul_peak()
    peak_now = (peak + peak_after) / 2
    scale = peak_now / OFFICIAL_PEAK_GFLOPS  # <1 when the machine is loaded: our times are inflated by 1/scale

    head = ("| config | params M | batch | tokens | encode s | decode s | RTF enc | RTF dec | CPU s enc / dec "
            "| enc one-pass s (CPU s) | enc GFLOP/s (% peak) "
            "| dec GFLOP/s (% peak) | peak RSS MB | official enc / dec s | speed-up enc / dec (raw) | (peak-normalised) |")
    print(head)
    print("|" + "|".join(["---"] * (head.count("|") - 1)) + "|")
    for r in rows:
        audio_s = r["seconds"] * r["batch"]
        eg, dg = r["enc_gflop"] / r["encode_s"], r["dec_gflop"] / r["decode_s"]
        off = OFFICIAL.get((r["config"], r["batch"]))
        if off:
            raw = f"{off[0] / r['encode_s']:.2f}x / {off[1] / r['decode_s']:.2f}x"
            norm = f"{off[0] / (r['encode_s'] * scale):.2f}x / {off[1] / (r['decode_s'] * scale):.2f}x"
            offs = f"{off[0]:.3g} / {off[1]:.3g}"
        else:
            raw = norm = offs = "-"
        print(f"| {r['config']} | {r['params_m']:.1f} | {r['batch']} | {r['tokens']} | {r['encode_s']:.3f} | {r['decode_s']:.3f} "
              f"| {r['encode_s'] / audio_s:.4f} | {r['decode_s'] / audio_s:.4f} | {r['encode_cpu_s']:.3f} / {r['decode_cpu_s']:.3f} "
              f"| {r['encode_one_pass_s']:.3f} ({r['encode_one_pass_cpu_s']:.3f}) | {eg:.0f} ({100 * eg / peak_now:.0f} %) "
              f"| {dg:.0f} ({100 * dg / peak_now:.0f} %) | {r['peak_rss_mb']:.0f} | {offs} | {raw} | {norm} |")
    print(f"# matmul peak before / after: {peak:.0f} / {peak_after:.0f} GFLOP/s; speed-up > 1 means faster than official.")
    print("# CPU s: process CPU time (all threads). one-pass: the same encode without item chunking, as upstream.")


if __name__ == "__main__":
    main()
