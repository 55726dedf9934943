"""Selftok speed and memory: encode, renderer decode, flow decode at 8 / 50 steps, batch 1 and 8.

Also compares the per-step cost of our sampler (mask from the token schedule, visible prefix only,
position modulations computed once) with an upstream-style sampler that re-runs the encoder on the
noise at every step and runs the decoder on the full masked context, in the same run.

    PYTHONPATH=. python benchmarks/bench_selftok.py                       # CPU: tiny + reduced, short
    PYTHONPATH=. python benchmarks/bench_selftok.py --device cuda --configs tiny,reduced,released

Random weights (speed only). "reduced" = released encoder and token count (512 tokens, 32,768 codes,
16 encoder blocks) with a 6-block decoder (width 384); "released" = the full 2.2 B-parameter model.
The released configs are run at the latent level (the SD3 VAE is not part of the benchmark).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

from zoo.pipelines.bench import sync
from zoo.samplers import linspace_timesteps
from zoo.tokenizers import selftok as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402


def configs():
    released = st.SelftokConfig()
    return {
        "tiny": st.TINY_CONFIG,
        "reduced": dataclasses.replace(released, decoder_depth=6),
        "released": released,
    }


def timed(fn, device, repeats):
    fn()  # warm-up
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    sync(device)
    return (time.perf_counter() - t0) / repeats, out


def upstream_style_decode(model, tokens, noise, steps):
    """Re-run the encoder on the noise at every step (only to build the mask, as upstream), full masked context."""
    times = linspace_timesteps(steps)
    x = noise
    for i in range(steps):
        model.encode_latents_full(noise)  # upstream: encoder(x=x_0 (= noise), d=k) -> mask only
        v = model.velocity(x, times[i].expand(x.shape[0]), tokens)
        x = x - (times[i] - times[i + 1]).to(x.device) * v
    return x


def peak_mem(device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
    import resource

    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (process RSS)"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--configs", default="tiny,reduced")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--steps", default="8,50")
    ap.add_argument("--max-steps-cpu-large", type=int, default=8, help="on CPU, skip step counts above this for non-tiny configs")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    peak = timing.matmul_peak(device) * 1e9  # FLOP/s
    print(f"device {device}; fp32 matmul peak {peak / 1e9:.0f} GFLOP/s (measured in this run)")
    print(f"{'config':9} {'what':22} {'batch':>5} {'s/call':>9} {'items/s':>9} {'GFLOP/s':>9} {'of peak':>7}")
    for name in args.configs.split(","):
        cfg = configs()[name]
        for decoder in ("flow", "renderer"):
            c = dataclasses.replace(cfg, decoder=decoder, context_see_xt=decoder == "flow")
            with torch.device(device):
                model = st.Selftok(c).eval().requires_grad_(False)
            if decoder == "flow":
                print(f"# {name}: {model.num_parameters() / 1e6:.1f} M parameters (flow decoder)")
            s = c.latent_size
            for b in (int(v) for v in args.batches.split(",")):
                lat = torch.randn(b, c.latent_channels, s, s, device=device)
                noise = torch.randn_like(lat)
                toks = model.encode_latents(lat)
                rows = []
                if decoder == "flow":
                    if c.vae == "dct":
                        img = torch.rand(b, 3, c.image_size, c.image_size, device=device)
                        rows.append(("encode (images)", lambda: model.encode(img), 1))
                    rows.append(("encode (latents)", lambda: model.encode_latents(lat), 1))
                    for n in (int(v) for v in args.steps.split(",")):
                        if device.type == "cpu" and name != "tiny" and n > args.max_steps_cpu_large:
                            continue
                        rows.append((f"decode {n} steps", lambda n=n: model.decode_latents(toks, noise=noise, steps=n), n))
                        rows.append((f"  upstream-style {n}", lambda n=n: upstream_style_decode(model, toks, noise, n), n))
                else:
                    rows.append(("decode renderer (1)", lambda: model.render_latents(toks), 1))
                for what, fn, _ in rows:
                    sec, _ = timed(fn, device, 1 if name != "tiny" else 3)
                    fl = timing.flops(fn)
                    print(f"{name:9} {what:22} {b:5d} {sec:9.4f} {b / sec:9.2f} {fl / sec / 1e9:9.1f} {fl / sec / peak:7.1%}")
            del model
    print(f"peak memory: {peak_mem(device)}")


if __name__ == "__main__":
    main()
