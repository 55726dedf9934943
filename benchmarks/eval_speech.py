"""Held-out speech quality of an audio tokenizer next to codec2, a classical codec at a similar bit rate.

    PYTHONPATH=. python benchmarks/eval_speech.py xy-tokenizer-tiny-16k [--json out.json]
    PYTHONPATH=. python benchmarks/eval_speech.py wavtokenizer-tiny-24k
    PYTHONPATH=. python benchmarks/eval_speech.py runs/xy_tokenizer/tiny-16k/final

What `zoo eval NAME /usr/share/klettres --split speech` does not: the codec2 baseline, PESQ skipped per
clip, the conversation clip scored apart. Cards are not written here: `--json` writes the numbers, which
models/README.md says how to copy into a model's metrics.json.

Held-out data (`speech:` of recipes/splits.yaml; never in the audio recipes' training folders): every clip of Debian
klettres-data's `en/` and `de/` folders (letters and syllables, 109 clips), and samples/speech_16k.wav
(10 s of conversation). Each clip is resampled to 16 kHz mono, encoded and decoded one at a time (the
model resamples to its own rate), and the output is resampled back to 16 kHz; the reference is cut to the
decoded length (XY-Tokenizer drops a trailing partial 80 ms frame).

Metrics (zoo.metrics.audio): PESQ wide band (16 kHz) and narrow band (8 kHz), STOI, and the mel distance
(L1 of natural-log 80-bin mels), averaged over clips; clips on which PESQ finds no utterance are counted
and left out of the PESQ means only.

Baseline: codec2 (Debian package `codec2`, LGPL-2.1; `apt-get install -y codec2`), a classical
parametric speech codec that works at 8 kHz: modes 700C (700 bps) and 1200 (1200 bps) bracket the tiny
model's 800 bps. Its output is resampled back to 16 kHz, so its PESQ-WB also pays for the lost 4-8 kHz band;
compare PESQ-NB for the codec itself. Codec2's output lags its input (a fixed algorithmic delay);
the delay is measured once per mode by cross-correlation on the conversation clip and removed, so that
STOI and the mel distance compare aligned signals (PESQ aligns by itself).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import zoo
from zoo.media.audio import load_audio, resample, to_mono
from zoo.metrics import audio as M
from zoo.pipelines.splits import heldout

REPO = Path(__file__).resolve().parents[1]
HELD_OUT_LANGS = tuple(e for e in heldout("speech") if e != "speech_16k")  # recipes/splits.yaml: en, de
RATE = 16000


def held_out_clips(klettres: Path) -> dict[str, list[tuple[str, torch.Tensor]]]:
    """{"klettres": [(name, wav [T] at 16 kHz)], "conversation": [...]}"""
    sets: dict[str, list] = {"klettres": [], "conversation": []}
    for lang in HELD_OUT_LANGS:
        files = sorted((klettres / lang).rglob("*.ogg"))
        if not files:
            raise FileNotFoundError(f"No held-out clips under {klettres / lang}; install klettres-data (recipes/wavtokenizer/get_klettres.sh).")
        for f in files:
            wav, sr = load_audio(f)
            sets["klettres"].append((f"{lang}/{f.relative_to(klettres / lang)}", resample(to_mono(wav), sr, RATE)[0]))
    wav, sr = load_audio(REPO / "samples" / "speech_16k.wav")
    sets["conversation"].append(("samples/speech_16k.wav", resample(to_mono(wav), sr, RATE)[0]))
    return sets


def codec2_roundtrip(wav: torch.Tensor, mode: str, delay: int = 0) -> torch.Tensor:
    """wav [T] at 16 kHz -> codec2 at 8 kHz (16-bit PCM) -> back to 16 kHz, [T], advanced by `delay`
    samples (the codec's algorithmic delay, see codec2_delay)."""
    x8 = resample(wav[None], RATE, 8000)[0].clamp(-1, 1)
    pcm = (x8.numpy() * 32767).round().astype("<i2")
    with tempfile.TemporaryDirectory() as d:
        raw, bit, out = Path(d) / "in.raw", Path(d) / "c.bit", Path(d) / "out.raw"
        raw.write_bytes(pcm.tobytes())
        subprocess.run(["c2enc", mode, str(raw), str(bit)], check=True, capture_output=True)
        subprocess.run(["c2dec", mode, str(bit), str(out)], check=True, capture_output=True)
        y8 = torch.from_numpy(np.frombuffer(out.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0)
    y = resample(y8[None], 8000, RATE)[0][delay:]
    n = wav.shape[-1]
    return torch.nn.functional.pad(y, (0, max(0, n - y.shape[-1])))[:n]


def codec2_delay(wav: torch.Tensor, mode: str, max_lag: int = 1600) -> int:
    """The lag (samples at 16 kHz, 0..max_lag) that best aligns codec2's output with its input, by
    cross-correlation over a long clip. Measured here: 264 (700C) and 136 (1200) on samples/speech_16k.wav."""
    y = codec2_roundtrip(wav, mode)
    n = wav.shape[-1] - max_lag
    corr = torch.stack([(wav[:n] * y[lag : lag + n]).sum() for lag in range(max_lag)])
    return int(corr.argmax())


def score(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> dict:
    """[(estimate [T], reference [T])] -> mean metrics over clips."""
    out = {"pesq_wb": [], "pesq_nb": [], "stoi": [], "mel_distance": []}
    skipped = 0
    for est, ref in pairs:
        e, r = est[None, None], ref[None, None]
        out["stoi"].append(float(M.stoi(e, r, RATE)[0]))
        out["mel_distance"].append(float(M.mel_distance(e, r, RATE)[0]))
        try:
            out["pesq_wb"].append(float(M.pesq(e, r, RATE, "wb")[0]))
            out["pesq_nb"].append(float(M.pesq(e, r, RATE, "nb")[0]))
        except Exception as err:  # pesq.NoUtterancesError and friends on very short / quiet clips
            if "Utterance" not in type(err).__name__ and "utterance" not in str(err).lower():
                raise
            skipped += 1
    res = {k: round(sum(v) / len(v), 4) if v else math.nan for k, v in out.items()}
    res["clips"] = len(pairs)
    res["pesq_skipped"] = skipped
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="catalogue name or zoo folder (e.g. xy-tokenizer-tiny-16k)")
    ap.add_argument("--klettres", default="/usr/share/klettres")
    ap.add_argument("--codec2", nargs="*", default=["700C", "1200"], help="codec2 modes for the baseline ('' for none)")
    ap.add_argument("--json", help="write the full results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    tok = zoo.load(args.model).eval()
    if tok.modality != "audio":
        raise ValueError(f"{args.model} is a {tok.modality} tokenizer; this evaluation is for speech.")
    out_rate = getattr(tok, "output_sample_rate", tok.sample_rate)  # XY-Tokenizer may decode at another rate
    sets = held_out_clips(Path(args.klettres))
    bps = tok.token_rate * math.log2(tok.codebook_size)
    systems = {f"{tok.variant or args.model} ({bps:g} bps)": None}
    modes = [m for m in args.codec2 if m]
    if modes and shutil.which("c2enc") is None:
        sys.exit("codec2 is not installed: apt-get install -y codec2 (or pass --codec2 '' to skip the baseline).")
    delays = {m: codec2_delay(sets["conversation"][0][1], m) for m in modes}
    for m in modes:
        systems[f"codec2 {m} ({m.rstrip('C')} bps)"] = m

    results: dict = {}
    t0 = time.perf_counter()
    for name, mode in systems.items():
        results[name] = {}
        for set_name, clips in sets.items():
            pairs = []
            for _, wav in clips:
                if mode is None:
                    with torch.inference_mode():
                        rec = resample(tok.decode(tok.encode(wav[None, None], sample_rate=RATE))[0], out_rate, RATE)[0]
                    n = min(rec.shape[-1], wav.shape[-1])  # resampling back may add a sample
                    rec, ref = rec[:n], wav[:n]
                else:
                    rec, ref = codec2_roundtrip(wav, mode, delays[mode]), wav
                pairs.append((rec.float(), ref.float()))
            results[name][set_name] = score(pairs)
            print(f"{name:45s} {set_name:12s} " + " ".join(f"{k}={v}" for k, v in results[name][set_name].items()), flush=True)
    # the measuring command (publishing options do not change the numbers)
    command = "PYTHONPATH=. python benchmarks/eval_speech.py " + args.model
    if args.klettres != ap.get_default("klettres"):
        command += f" --klettres {args.klettres}"
    if args.codec2 != ap.get_default("codec2"):
        command += " --codec2 " + " ".join(repr(m) if not m else m for m in args.codec2)
    report = {"results": results, "held_out": {"klettres": [f"{l}/" for l in HELD_OUT_LANGS], "conversation": "samples/speech_16k.wav"},
              "codec2_delay_samples": delays, "seconds": round(time.perf_counter() - t0, 1), "command": command}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
