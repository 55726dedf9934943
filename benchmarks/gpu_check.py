"""On a CUDA machine: every family's public parity fixture on the GPU in fp32 (ids equal to the
fixture) and bf16 (agreement), then encode / decode timings of each family's released-size config
(random weights) at batch 1, 8 and 32 in fp32, bf16 and bf16 + torch.compile. One table.

    python benchmarks/gpu_check.py [--parity-dir ../shared/parity] [--batches 1 8 32] [--skip-compile]
    python benchmarks/gpu_check.py --device cpu --models wavtokenizer-tiny-24k --batches 1 --skip-compile  # dry run

Without CUDA it says so and exits 0. `--device cpu` runs the same checks on the CPU (the tests do, so that
the script itself works when a GPU is there).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _parity_cases(d: Path):
    """(family, checkpoint, run(model, io, device) -> (our ids, fixture ids)) for each fixture."""

    def wav(m, io, dev):
        return m.encode(io["audio_in"][:, None].to(dev), sample_rate=24000).ids, io["codes"][0]

    def xy(m, io, dev):
        t = m.encode(io["input.wav"][:, None].to(dev), sample_rate=16000, lengths=io["input.lengths"], full_window=True)
        return t.ids[0, :, :16], io["api.codes_0"]

    def flextok(m, io, dev):
        return m.encode(((io["rgb"] + 1) / 2).to(dev)).ids, io["tokens"]

    def odp(m, io, dev):
        return m.encode(io["input_image"].to(dev)).ids, io["token_ids"][:, 0]

    def wetok(m, io, dev):
        return m.encode(((io["input_image"] + 1) / 2).to(dev)).ids, io["token_ids"].permute(0, 3, 1, 2)

    def selftok(m, io, dev):
        with torch.inference_mode(), m.autocast():
            return m.encode_latents(io["x0_latent"].to(dev)).ids, io["token_ids"]

    return [
        ("wavtokenizer", "weights.safetensors", "io.safetensors", wav),
        ("xy_tokenizer", "weights.safetensors", "io.safetensors", xy),
        ("flextok", "weights.safetensors", "io.safetensors", flextok),
        ("one_d_piece", "weights.safetensors", "io.safetensors", odp),
        ("wetok", "weights.safetensors", "io.safetensors", wetok),
        ("selftok", "weights.safetensors", "io.safetensors", selftok),
    ]


TIMED = ["wavtokenizer-small-40tps", "xy-tokenizer-16k", "flextok-d18-d28-in1k", "one-d-piece-s-256",
         "wetok-imagenet-f8", "selftok-512", "vat-512b"]


def parity(parity_dir: Path, device: torch.device) -> list[str]:
    import zoo
    from safetensors.torch import load_file

    rows = []
    for family, weights, io_name, run in _parity_cases(parity_dir):
        d = parity_dir / family
        if not (d / weights).is_file():
            rows.append(f"{family:<14} fixture missing at {d}")
            continue
        io = load_file(str(d / io_name))
        model = zoo.convert(family, checkpoint=d / weights, config=d / "config.json").to(device)
        try:
            ours, ref = run(model, io, device)
            exact = torch.equal(ours.cpu(), ref)
            model.set_precision("bf16")
            bf, _ = run(model, io, device)
            share = float((bf.cpu() == ref).float().mean())
            rows.append(f"{family:<14} fp32 ids {'EQUAL' if exact else 'DIFFER'} to the fixture; bf16 ids equal: {share:.1%}")
        except Exception as e:  # report and go on: one family must not hide the others
            rows.append(f"{family:<14} FAILED: {type(e).__name__}: {str(e)[:200]}")
    return rows


def timings(device: torch.device, batches: list[int], compile_too: bool, models: list[str] = TIMED,
            seconds: float = 10.0) -> list[str]:
    from zoo import registry
    from zoo.pipelines.bench import bench

    rows = [f"{'model':<26} {'batch':>5} {'mode':<13} {'enc items/s':>12} {'dec items/s':>12} {'peak MB':>9}"]
    modes = [("fp32", False), ("bf16", False)] + ([("bf16", True)] if compile_too else [])
    for name in models:
        spec, variant = registry.lookup(name)
        for precision, comp in modes:
            torch.manual_seed(0)
            try:
                tok = spec.tokenizer(variant.config).eval()
                tok.variant = name
                tok.setup(device=device, precision=precision, compile=comp)
            except Exception as e:
                rows.append(f"{name:<26} {'-':>5} {precision + ('+compile' if comp else ''):<13} build failed: {type(e).__name__}: {str(e)[:120]}")
                break
            for b in batches:
                mode = precision + ("+compile" if comp else "")
                try:
                    r = bench(tok, batch_size=b, seconds=seconds, repeats=3)
                    rows.append(f"{name:<26} {b:>5} {mode:<13} {r['encode_items_per_s']:>12.2f} {r['decode_items_per_s']:>12.2f} "
                                f"{r['peak_memory_mb']:>9.0f}")
                except Exception as e:
                    rows.append(f"{name:<26} {b:>5} {mode:<13} FAILED: {type(e).__name__}: {str(e)[:120]}")
                finally:
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
            del tok
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parity-dir", default=str(REPO.parent / "shared" / "parity"))
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--skip-compile", action="store_true")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                   help="cuda (default); cpu runs the same checks on the CPU, a dry run of this script")
    p.add_argument("--models", nargs="+", default=TIMED, help="catalogue names to time (default: released sizes)")
    p.add_argument("--seconds", type=float, default=10.0, help="audio clip length for the timings")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False); nothing to check.")
        return 0
    device = torch.device(args.device)
    t0 = time.time()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (dry run)"
    print(f"gpu_check on {where}, torch {torch.__version__}")
    for row in parity(Path(args.parity_dir), device):
        print(row)
    for row in timings(device, args.batches, not args.skip_compile, args.models, args.seconds):
        print(row, flush=True)
    print(f"gpu_check: {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
