"""WeTok speed and memory: encode / decode images/s at batch 1 and 8 for the tiny config and the
released imagenet-f16 config (random weights), achieved GFLOP/s as a fraction of a matmul peak
measured in the same run, and the peak memory of group-wise LFQ with 8 groups (training mode).

    PYTHONPATH=. python benchmarks/bench_wetok.py                      # full table (slow on CPU)
    PYTHONPATH=. python benchmarks/bench_wetok.py --models tiny --batches 1 8
    PYTHONPATH=. python benchmarks/bench_wetok.py --device cuda

Official reference (shared/research/perf_official.md, same machine class, 2 threads, fp32, B=1, 256x256):
downsample16 encode 6.32 s, decode 7.87 s; downsample8 encode 9.45 s, decode 13.5 s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from zoo.quantizers.lfq import LFQ
from zoo.tokenizers.wetok import TINY_CONFIG, WeTok, WeTokConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402

CONFIGS = {"tiny": TINY_CONFIG, "imagenet-f16": WeTokConfig()}
OFFICIAL_B1_SECONDS = {"imagenet-f16": (6.32, 7.87)}  # (encode, decode), perf_official.md section 4


def flops(cfg: WeTokConfig, batch: int, size: int) -> tuple[float, float]:
    """FLOPs of encode and decode, counted on the meta device (no compute)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = WeTok(cfg)
        x = torch.empty(batch, 3, size, size)
        f = cfg.downsample_factor
        codes = torch.empty(batch, cfg.z_channels, size // f, size // f)
        noise = torch.empty_like(codes) if cfg.generative_decoder else None
    with FlopCounterMode(display=False) as enc:
        model.encoder(x)
    with FlopCounterMode(display=False) as dec:
        model.decoder(codes, noise)
    return float(enc.get_total_flops()), float(dec.get_total_flops())


def bench_model(name: str, batch: int, device: torch.device, repeats: int, peak: float,
                channels_last: bool = False) -> dict:
    cfg = CONFIGS[name]
    size = cfg.image_size
    torch.manual_seed(0)
    model = WeTok(cfg).eval().to(device)
    x = torch.rand(batch, 3, size, size, device=device)
    if channels_last:  # oneDNN's preferred layout for the 3x3 convs; not a parity-checked mode
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    tokens = model.encode(x)
    t_enc = timing.best_of(lambda: model.encode(x), device, repeats)
    t_dec = timing.best_of(lambda: model.decode(tokens), device, repeats)
    f_enc, f_dec = flops(cfg, batch, size)
    row = {
        "model": name,
        "size": size,
        "batch": batch,
        "encode_s": t_enc,
        "decode_s": t_dec,
        "encode_img_s": batch / t_enc,
        "decode_img_s": batch / t_dec,
        "encode_gflops": f_enc / t_enc / 1e9,
        "decode_gflops": f_dec / t_dec / 1e9,
    }
    row["encode_peak_frac"] = row["encode_gflops"] / peak
    row["decode_peak_frac"] = row["decode_gflops"] / peak
    ref = OFFICIAL_B1_SECONDS.get(name)
    if ref and batch == 1 and device.type == "cpu":
        row["official_encode_s"], row["official_decode_s"] = ref
    return row


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def quantizer_memory(groups: int, bits: int, batch: int, side: int, device: torch.device) -> dict:
    """Peak extra memory of one LFQ training step (forward + backward of entropy + commitment).

    CUDA: torch.cuda.max_memory_allocated. CPU (Linux): peak RSS growth, after resetting the
    high-water mark through /proc/self/clear_refs."""
    q = LFQ(bits, groups, batch_entropy="pooled").train().to(device)
    x = torch.randn(batch, side, side, groups * bits, device=device, requires_grad=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        base = _rss_kib("VmRSS") * 1024
    out = q(x)
    sum(out.losses.values()).backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _rss_kib("VmHWM") * 1024 - base
    positions = batch * side * side
    return {
        "groups": groups,
        "bits": bits,
        "positions": positions,
        "peak_mib": peak / 2**20,
        # what the group-wise penalty holds per copy: [N, G, 2^b] probabilities in fp32
        "probs_tensor_mib": positions * groups * 2**bits * 4 / 2**20,
        "joint_vocabulary": f"2^{groups * bits}",
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--skip-quantizer", action="store_true")
    p.add_argument("--channels-last", action="store_true", help="weights and input in channels-last layout")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    peak = timing.matmul_peak(device)
    print(f"device {device}, {torch.get_num_threads()} threads, fp32; matmul peak {peak:.1f} GFLOP/s (2048^2)")
    print()
    print("| model | size | batch | encode img/s | decode img/s | encode GFLOP/s (of peak) | decode GFLOP/s (of peak) | official B=1 enc / dec s |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models:
        for batch in args.batches:
            r = bench_model(name, batch, device, args.repeats, peak, args.channels_last)
            ref = f"{r['official_encode_s']:.2f} / {r['official_decode_s']:.2f} (ours {r['encode_s']:.2f} / {r['decode_s']:.2f})" if "official_encode_s" in r else "-"
            print(
                f"| {name} | {r['size']} | {batch} | {r['encode_img_s']:.3g} | {r['decode_img_s']:.3g} | "
                f"{r['encode_gflops']:.1f} ({r['encode_peak_frac']:.0%}) | {r['decode_gflops']:.1f} ({r['decode_peak_frac']:.0%}) | {ref} |",
                flush=True,
            )
    if not args.skip_quantizer:
        print()
        print("Group-wise LFQ, training step (entropy + commitment, forward + backward), batch 8 at 32x32 positions:")
        print("| groups x bits | positions | peak MiB | [N, G, 2^b] fp32 MiB | joint vocabulary (never built) |")
        print("|---|---|---|---|---|")
        for groups, bits in ((8, 8), (4, 8)):
            m = quantizer_memory(groups, bits, 8, 32, device)
            print(f"| {groups} x {bits} | {m['positions']} | {m['peak_mib']:.0f} | {m['probs_tensor_mib']:.0f} | {m['joint_vocabulary']} |")


if __name__ == "__main__":
    main()
