"""bf16 / fp16 against fp32 on real media, for every embedded model: share of equal ids and the
decode difference (PSNR for images, SI-SDR for audio; targets: ids >= 98 %, >= 35 dB / >= 25 dB).

    PYTHONPATH=. python benchmarks/agreement.py [--precisions bf16 fp16]
    PYTHONPATH=. python benchmarks/agreement.py --models one-d-piece-tiny-64 --precisions bf16 \
        --fp32-modules quantizer quantizer,encoder.to_token     # other precision policies, one per argument

Real media: the repo's 10 s speech sample (samples/speech_16k.wav) and scikit-image's photos
(astronaut, coffee, chelsea, rocket, cat), center-cropped to each model's input size.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODELS = ["wavtokenizer-tiny-24k", "xy-tokenizer-tiny-16k", "flextok-tiny-64", "one-d-piece-tiny-64",
          "wetok-tiny-f8", "selftok-tiny-64"]
PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "cat"]


def real_input(tok):
    from zoo import media

    if tok.modality == "audio":
        wav, sr = media.load_audio(REPO / "samples" / "speech_16k.wav")
        return wav.reshape(-1, wav.shape[-1]).mean(0)[None, None], {"sample_rate": sr}  # [1, 1, T]
    from skimage import data

    size = tok.input_size[0] if tok.input_size else 256
    imgs = [media.resize_center_crop(torch.from_numpy(getattr(data, n)()).permute(2, 0, 1).float() / 255, size)
            for n in PHOTOS]
    return torch.stack(imgs), {}


def main() -> int:
    import zoo
    from zoo.pipelines.bench import agreement

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--precisions", nargs="+", default=["bf16", "fp16"])
    p.add_argument("--fp32-modules", nargs="+", default=None, metavar="A,B",
                   help="try these policies instead of the family's (comma-separated submodule names)")
    args = p.parse_args()
    print(f"{'model':<24} {'prec':<5} {'ids equal':>10} {'decode vs fp32':>16}")
    for name in args.models:
        ref = zoo.load(name)
        x, kw = real_input(ref)
        for prec in args.precisions:
            for policy in args.fp32_modules or [None]:
                tok = zoo.load(name)
                if policy is not None:
                    tok.fp32_modules = tuple(policy.split(","))
                tok.set_precision(prec)
                r = agreement(ref, tok, x, kw)
                diff = r.get("decode_psnr_vs_fp32_db", r.get("decode_si_sdr_vs_fp32_db"))
                unit = "dB PSNR" if "decode_psnr_vs_fp32_db" in r else "dB SI-SDR"
                extra = f"  fp32: {policy}" if policy is not None else ""
                print(f"{name:<24} {prec:<5} {r['ids_equal']:>10.2%} {diff:>8.2f} {unit}{extra}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
