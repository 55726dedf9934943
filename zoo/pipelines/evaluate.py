"""Measure tokenizers on a dataset: metrics.json, report.html with samples, rate-distortion plots.

`zoo eval NAME [NAME ...] DATA --report DIR`. Images: PSNR, SSIM, ST-LPIPS, rFID, next to JPEG and
WebP at several qualities and raw 8-bit thumbnails; audio: PESQ (wide and narrow band), STOI, mel
distance, SI-SDR, next to codec2 when it is installed; 3D shapes (meshes, normalised and surface-sampled
as the model was trained, decoded on a MESH_RESOLUTION^3 grid and meshed by marching cubes): Chamfer
distance and F-scores against the original surface, volume IoU against its winding-number occupancy,
next to a voxel grid of the same bits (the classical codecs: baselines.py). Variable-length families
(those with `max_tokens`) get a curve over token counts (`num_tokens=` to choose them), multiscale ones
over their first scales. A metric whose package or network is missing is listed under "unavailable"
rather than silently dropped.

The one evaluation path of the project: `split=` keeps only the held-out items of recipes/splits.yaml
(`--split photos | speech | meshes`), `crop=` cuts each image into crop x crop tiles on a crop/2 grid (tiny models' native
size), `steps=` decodes stochastic decoders (FlexTok, Selftok) at each given number of sampler steps with
a fixed `seed`. Besides metrics.json and report.html, `card/<name>.json` holds each tokenizer's means in
the form `zoo cards` reads; copying one into models/<family>/<variant>/metrics.json is the documented
step (models/README.md) that puts measured numbers on a card. Nothing here writes a card.
"""

from __future__ import annotations

import html
import io
import json
import math
from pathlib import Path

import torch
from torch import Tensor

from zoo.io import atomic_write, atomic_write_text
from zoo.pipelines import baselines, discover, read_item

MESH_RESOLUTION = 64  # default decode grid side of 3D tokenizers
SURFACE_SAMPLES = 20_000  # points per surface for Chamfer distance and F-score
F_SCORE_TAUS = (0.02, 0.05)  # in the units of [-1, 1]^3
SPEECH_RATE = 16000  # codec2's clips are scored at this rate (PESQ's wide band)


def _bits_per_token(tok) -> float:
    return math.log2(tok.codebook_size)


def _token_counts(tok) -> list[int] | None:
    """Prefix lengths to sweep for variable-length families (powers of two up to the maximum)."""
    n = getattr(tok, "max_tokens", None)
    if not n:
        return None
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n]


def _crops(x: Tensor, size: int) -> list[tuple[str, Tensor]]:
    """[1, 3, H, W] -> every size x size crop on a size/2 grid, keyed "@top,left"."""
    h, w = x.shape[-2:]
    stride = max(1, size // 2)
    return [(f"@{top},{left}", x[..., top : top + size, left : left + size])
            for top in range(0, h - size + 1, stride) for left in range(0, w - size + 1, stride)]


def _image_metrics(x: Tensor, y: Tensor, unavailable: set) -> dict:
    from zoo import metrics

    y = y.clamp(0, 1)
    out = {"psnr": float(metrics.psnr(y, x)), "ssim": float(metrics.ssim(y, x))}
    try:
        out["st_lpips_alex"] = float(metrics.st_lpips(y, x))
    except metrics.MetricUnavailable as e:
        unavailable.add(f"st_lpips: {e}")
    return out


def _audio_metrics(x: Tensor, y: Tensor, sr: int, unavailable: set) -> dict:
    from zoo import metrics

    out = {"si_sdr": float(metrics.si_sdr(y, x)), "mel_distance": float(metrics.mel_distance(y, x, sr))}
    for name, fn in (("pesq_wb", lambda: metrics.pesq(y, x, sr, "wb")), ("pesq_nb", lambda: metrics.pesq(y, x, sr, "nb")),
                     ("stoi", lambda: metrics.stoi(y, x, sr))):
        try:
            out[name] = float(fn())
        except metrics.MetricUnavailable as e:
            unavailable.add(f"{name}: {e}")
        except Exception as e:  # PESQ refuses silent or too-short clips; say so per item
            out[name] = None
            unavailable.add(f"{name} on some items: {type(e).__name__}: {e}")
    return out


def _mesh_metrics(grid: Tensor, gt, gt_occ: Tensor) -> dict:
    """A decoded occupancy grid [R, R, R] against the normalised reference mesh and its occupancy on the grid.
    A grid with no surface scores F-score 0 and no Chamfer distance; `surface` counts it."""
    import numpy as np

    from zoo import metrics
    from zoo.media import mesh as M

    out = {"iou": metrics.volume_iou(grid, gt_occ)}
    try:
        pred = M.marching_cubes(grid)
    except ValueError:
        return {**out, "chamfer": None, **{f"fscore@{t}": 0.0 for t in F_SCORE_TAUS}, "surface": 0}
    a = torch.from_numpy(np.asarray(pred.sample(SURFACE_SAMPLES, seed=0)))
    b = torch.from_numpy(np.asarray(gt.sample(SURFACE_SAMPLES, seed=1)))
    return {**out, "chamfer": metrics.chamfer_distance(a, b), **{f"fscore@{t}": metrics.f_score(a, b, t) for t in F_SCORE_TAUS},
            "surface": 1}


def _reference_mesh(item, tok, resolution: int):
    """A mesh item -> (the mesh normalised as the model was trained, its occupancy on the decode grid,
    the model's input [1, N, 6]: seeded surface points with normals, as zoo.media.mesh.load_points_for)."""
    from zoo.media import mesh as M

    if item.member is not None:
        raise ValueError("3D evaluation reads mesh files, not shard members")
    gt = M.normalize_mesh(M.load_mesh(item.path), float(tok.cfg.normalize_bound))
    occ = M.occupancy(gt, M.grid_points(resolution)).float().reshape((resolution,) * 3)
    return gt, occ, M.sample_surface(gt, int(tok.num_points), seed=0)[None]


def _prefixes(tokens, counts: list[int] | None) -> list[tuple[int, object]]:
    """(token count, tokens) of each curve point: the first scales of multiscale tokens, else prefixes."""
    if tokens.layout == "multiscale":
        sizes = tokens.meta["scale_sizes"]
        return [(sum(sizes[:s]), tokens.first_scales(s)) for s in range(1, len(sizes))]
    return [(k, tokens[:, :k]) for k in counts or []]


def _mean(rows: list[dict]) -> dict:
    keys = {k for r in rows for k, v in r.items() if isinstance(v, (int, float))}
    out = {}
    for k in sorted(keys):
        vals = [r[k] for r in rows if isinstance(r.get(k), (int, float))]
        out[k] = sum(vals) / len(vals) if vals else None
    return out


def evaluate(
    tokenizers: dict[str, object],
    inputs: list[str | Path],
    report_dir: str | Path,
    *,
    max_items: int = 16,
    samples: int = 4,
    rfid: bool = True,
    progress: bool = True,
    split: str | None = None,
    crop: int | None = None,
    num_tokens: list[int] | None = None,
    steps: list[int] | None = None,
    seed: int = 0,
    resolution: int = MESH_RESOLUTION,
    command: str | None = None,
) -> dict:
    """Run each tokenizer over up to `max_items` items of `inputs`; write the report; return the metrics.

    split: photos | speech (recipes/splits.yaml): measure only the held-out items, all of them present.
    crop: cut images into crop x crop tiles (crop/2 grid) instead of resizing them to the model's size.
    num_tokens: prefix lengths of the curve of variable-length families (default 1, 2, 4, ... max).
    steps: sampler steps of stochastic decoders; one entry per value, "NAME @ S steps", noise seeded by `seed`.
    resolution: decode grid side of 3D tokenizers.
    command: the command line recorded in card/<name>.json."""
    from tqdm import tqdm

    from zoo.media import SUFFIXES

    report_dir = Path(report_dir)
    (report_dir / "samples").mkdir(parents=True, exist_ok=True)
    modalities = {t.modality for t in tokenizers.values()}
    if len(modalities) != 1:
        raise ValueError(f"zoo eval compares tokenizers of one modality; got {sorted(modalities)}.")
    modality = modalities.pop()
    if modality not in ("image", "audio", "3d"):
        raise ValueError(f"zoo eval handles image, audio and 3D tokenizers; got {modality!r}.")
    if crop is not None and modality != "image":
        raise ValueError("crop applies to images only.")
    items = discover(list(inputs), SUFFIXES[modality])
    if split is not None:
        from zoo.pipelines.splits import heldout, is_heldout

        entries = heldout(split)
        items = [i for i in items if is_heldout(i.key, entries)]
        found = {e for e in entries for i in items if is_heldout(i.key, (e,))}
        if modality != "audio" and len(found) < len(entries):
            writer = "training/prepare_photos.py" if modality == "image" else "recipes/vat/get_meshes.py"
            raise ValueError(f"The {split} split holds out {sorted(set(entries) - found)}, which are not in "
                             f"{', '.join(map(str, inputs))}; write them with {writer}.")
    items = items[:max_items]
    if not items:
        raise ValueError(f"No {modality} files in {', '.join(map(str, inputs))}.")
    unavailable: set[str] = set()
    result: dict = {"modality": modality, "items": [i.key for i in items], "split": split, "crop": crop,
                    "seed": seed, "tokenizers": {}, "baselines": {}}
    sample_rows: list[dict] = []
    runs = {(f"{n} @ {s} steps" if steps else n): (tok, {"steps": s} if steps else {})
            for n, tok in tokenizers.items() for s in (steps or [None])}

    failures: list[str] = []
    for name, (tok, decode_kw) in runs.items():
        rows, curve_rows, originals, recons = [], {}, [], []
        size = None if crop else getattr(tok, "input_size", None)
        tokens_per_item = None
        counts = [k for k in num_tokens if k <= tok.max_tokens] if num_tokens and getattr(tok, "max_tokens", None) else _token_counts(tok)
        shown = 0
        for item in tqdm(items, desc=name, unit="item", disable=not progress):
            try:  # one bad item is reported by its key (and tokenizer); the others are measured
                if modality == "3d":
                    gt, gt_occ, x_item = _reference_mesh(item, tok, resolution)
                    kw, decode_kw = {}, {"resolution": resolution}
                else:
                    x_item, kw = read_item(item, modality, mono=True, size=size)
                units = [(item.key + k, xc) for k, xc in _crops(x_item, crop)] if crop else [(item.key, x_item)]
                measured = []
                for key, x in units:
                    gen = lambda: dict(decode_kw, generator=torch.Generator().manual_seed(seed)) if "steps" in decode_kw else decode_kw  # noqa: E731
                    with torch.inference_mode():
                        tokens = tok.encode(x, **kw)
                        y = tok.decode(tokens, **gen())
                    y = (y if isinstance(y, Tensor) else torch.stack(list(y))).cpu()  # metrics run on the CPU
                    bits = tokens.ids[0].numel() * _bits_per_token(tok)
                    if modality == "image":
                        m = _image_metrics(x, y, unavailable)
                        m["bits"] = bits
                        m["bpp"] = bits / (x.shape[-1] * x.shape[-2])
                    elif modality == "3d":
                        m = dict(_mesh_metrics(y[0], gt, gt_occ), bits=bits)
                    else:
                        from zoo.signal import resample

                        sr = tok.sample_rate
                        ref = resample(x, kw["sample_rate"], sr)[..., : y.shape[-1]]
                        y = y[..., : ref.shape[-1]]
                        m = _audio_metrics(ref, y, sr, unavailable)
                        m["kbps"] = bits / (ref.shape[-1] / sr) / 1000
                    curve_item = {}
                    for k, prefix in _prefixes(tokens, counts):
                        with torch.inference_mode():
                            yk = tok.decode(prefix, **gen()).cpu()
                        mk = {"image": lambda: _image_metrics(x, yk, set()), "3d": lambda: _mesh_metrics(yk[0], gt, gt_occ)}.get(
                            modality, dict)()
                        mk["bits"] = k * _bits_per_token(tok)
                        curve_item[k] = mk
                    measured.append((key, x, y, m, curve_item, tokens))
            except Exception as e:  # noqa: BLE001
                from zoo.pipelines import describe_error

                failures.append(f"{item.key} ({name}): {describe_error(e)}")
                continue
            for key, x, y, m, curve_item, tokens in measured:
                rows.append(dict(m, item=key))
                tokens_per_item = int(tokens.ids[0].numel())
                if modality == "image":
                    originals.append(x)
                    recons.append(y.clamp(0, 1))
                for k, mk in curve_item.items():
                    curve_rows.setdefault(k, []).append(mk)
                if shown < samples and modality != "3d":  # decoded shapes are not shown
                    sample_rows.append(_write_sample(report_dir / "samples", name, key, shown, x, y, modality,
                                                     getattr(tok, "sample_rate", None), kw.get("sample_rate")))
                    shown += 1
        entry = {"per_item": rows, "mean": _mean(rows), "codebook_size": tok.codebook_size,
                 "tokens_per_item": tokens_per_item, **({"decode": decode_kw} if "steps" in decode_kw else {})}
        if curve_rows:
            entry["curve"] = [{"num_tokens": k, **_mean(v)} for k, v in sorted(curve_rows.items())]
        if modality == "image" and rfid and len(originals) >= 2:
            from zoo import metrics

            try:
                entry["mean"]["rfid"] = metrics.rfid(torch.cat(originals), torch.cat(recons))
            except metrics.MetricUnavailable as e:
                unavailable.add(f"rfid: {e}")
        result["tokenizers"][name] = entry

    first = next(iter(tokenizers.values()))
    if modality == "image":
        result["baselines"] = _image_baselines(items, crop, getattr(first, "input_size", None))
    elif modality == "audio":
        result["baselines"] = _speech_baselines(items, unavailable)
    elif result["tokenizers"][next(iter(tokenizers))]["per_item"]:
        result["baselines"] = _shape_baselines(items, first, int(result["tokenizers"][next(iter(tokenizers))]["mean"]["bits"]), resolution)
    result["unavailable"] = sorted(unavailable)
    result["failures"] = failures
    plots = _plots(result, report_dir)
    atomic_write_text(report_dir / "metrics.json", json.dumps(result, indent=2) + "\n")
    for name, entry in result["tokenizers"].items():
        atomic_write_text(report_dir / "card" / f"{_slug(name)}.json",
                          json.dumps(card_metrics(result, name, command), indent=2) + "\n")
    atomic_write_text(report_dir / "report.html", _html(result, sample_rows, plots))
    return result


def _image_baselines(items, crop: int | None, size) -> dict:
    """JPEG / WebP curves over JPEG_QUALITIES and 8-bit thumbnails, means over the same images (or crops)."""
    from zoo import metrics

    images = []
    for item in items:
        try:  # items that cannot be read are already listed under failures
            x, _ = read_item(item, "image", size=None if crop else size)
        except (ValueError, OSError):
            continue
        images += [xc for _, xc in _crops(x, crop)] if crop else [x]
    out = {}
    for fmt in ("JPEG", "WEBP"):
        curve = []
        for q in baselines.JPEG_QUALITIES:
            pts = []
            for x in images:
                n, y = baselines.pillow_codec(x, fmt, q)
                pts.append({"quality": q, "bits": 8 * n, "bpp": 8 * n / (x.shape[-1] * x.shape[-2]),
                            "psnr": float(metrics.psnr(y, x)), "ssim": float(metrics.ssim(y, x))})
            curve.append({"quality": q, **_mean(pts)})
        out[fmt.lower()] = curve
    thumbs = []
    for side in baselines.THUMBNAIL_SIDES:
        small = [baselines.thumbnail(x, side) for x in images]
        pts = [{"bits": 24 * side * side, "bpp": 24 * side * side / (x.shape[-1] * x.shape[-2]),
                "psnr": float(metrics.psnr(y, x)), "ssim": float(metrics.ssim(y, x))} for x, y in zip(images, small)]
        thumbs.append({"side": side, **_mean(pts)})
    out["thumbnail"] = thumbs
    return out


def _speech_baselines(items, unavailable: set) -> dict:
    """codec2 at each of baselines.CODEC2_MODES over the clips (mono, at SPEECH_RATE), its delay measured
    once per mode on the longest clip and removed so that STOI and the mel distance compare aligned signals."""
    from zoo.signal import resample

    if not baselines.codec2_available():
        unavailable.add("codec2 baseline: codec2 is not installed (apt-get install -y codec2)")
        return {}
    clips = []
    for item in items:
        try:  # items that cannot be read are already listed under failures
            x, kw = read_item(item, "audio", mono=True)
        except (ValueError, OSError):
            continue
        clips.append(resample(x[0, 0], kw["sample_rate"], SPEECH_RATE))
    if not clips:
        return {}
    longest = max(clips, key=lambda c: c.shape[-1])
    out = {}
    for mode, bps in baselines.CODEC2_MODES.items():
        delay = baselines.codec2_delay(longest, SPEECH_RATE, mode)
        rows = []
        for c in clips:
            try:  # a clip shorter than codec2's frame decodes to nothing: the tokenizers' failures list names it
                rows.append(_audio_metrics(c[None, None], baselines.codec2(c, SPEECH_RATE, mode, delay)[None, None], SPEECH_RATE, set()))
            except (RuntimeError, ValueError):
                continue
        out[f"codec2 {mode}"] = [{"kbps": bps / 1000, "delay_samples": delay, **_mean(rows)}]
    return out


def _shape_baselines(items, tok, bits: int, resolution: int) -> dict:
    """A binary voxel grid of at most `bits` per shape (the tokens' size), upsampled and meshed as the decodes."""
    rows, k = [], None
    for item in items:
        try:
            gt, gt_occ, _ = _reference_mesh(item, tok, resolution)
        except (ValueError, OSError):
            continue
        grid, k = baselines.voxels(gt, bits, resolution)
        rows.append(dict(_mesh_metrics(grid, gt, gt_occ), bits=k**3))
    return {f"voxels {k}^3": [_mean(rows)]} if rows else {}


def card_metrics(result: dict, name: str, command: str | None = None) -> dict:
    """One tokenizer's measured means as `zoo cards` reads them: {"metrics": {label: value}, "command"}."""
    entry = result["tokenizers"][name]
    data = f"{len(result['items'])} {result['modality']} item(s)"
    if result.get("split"):
        data += f" of the held-out {result['split']} split (recipes/splits.yaml)"
    if result.get("crop"):
        data += f", {result['crop']}x{result['crop']} crops on a {result['crop'] // 2}-pixel grid"
    metrics = {"held-out data": data}
    if entry.get("decode"):
        metrics["decode"] = ", ".join(f"{k}={v}" for k, v in entry["decode"].items()) + f", seed {result['seed']}"
    for k, v in entry["mean"].items():
        metrics[k] = round(v, 4) if isinstance(v, float) else v
    for p in entry.get("curve", []):
        if "psnr" in p:
            metrics[f"PSNR / SSIM at {p['num_tokens']} tokens ({p['bits']:g} bits)"] = f"{p['psnr']:.2f} / {p['ssim']:.3f}"
        elif "fscore@0.05" in p:
            metrics[f"F-score@0.05 / IoU at {p['num_tokens']} tokens ({p['bits']:g} bits)"] = f"{p['fscore@0.05']:.3f} / {p['iou']:.3f}"
    for b in result["baselines"].get("thumbnail", []):
        metrics[f"baseline: {b['side']}x{b['side']} 8-bit thumbnail ({b['bits']:g} bits) PSNR / SSIM"] = (
            f"{b['psnr']:.2f} / {b['ssim']:.3f}")
    if result["modality"] != "image":
        for codec, (b,) in result["baselines"].items():
            for k, v in b.items():
                metrics[f"baseline: {codec} {k}"] = round(v, 4) if isinstance(v, float) else v
    return {"metrics": metrics, "command": command} if command else {"metrics": metrics}


def _write_sample(folder: Path, name, key, idx, x, y, modality, model_sr, input_sr) -> dict:
    from zoo import media

    stem = f"{_slug(name)}-{idx:02d}"
    if modality == "image":
        err = (y - x).abs().mul(4).clamp(0, 1)  # error magnified 4x
        grid = torch.cat([x[0], y[0].clamp(0, 1), err[0]], dim=2)
        media.save_image(folder / f"{stem}.png", grid)
        return {"name": name, "key": key, "image": f"samples/{stem}.png"}
    from zoo.media.audio import resample

    ref = resample(x, input_sr, model_sr)[0]
    media.save_audio(folder / f"{stem}-orig.wav", ref, model_sr)
    media.save_audio(folder / f"{stem}-recon.wav", y[0], model_sr)
    _spectrograms(folder / f"{stem}-spec.png", ref, y[0], model_sr)
    return {"name": name, "key": key, "orig": f"samples/{stem}-orig.wav", "recon": f"samples/{stem}-recon.wav",
            "image": f"samples/{stem}-spec.png"}


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in s)


def _spectrograms(path: Path, a: Tensor, b: Tensor, sr: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zoo.media.audio import mel_spectrogram

    fig, axes = plt.subplots(2, 1, figsize=(8, 4), sharex=True)
    for ax, sig, title in zip(axes, (a, b), ("original", "reconstruction")):
        m = mel_spectrogram(sig.reshape(1, -1), sr, n_mels=80)[0]
        ax.imshow(m.numpy(), origin="lower", aspect="auto", cmap="magma")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(buf.getvalue()))


def _plots(result: dict, report_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    if result["modality"] == "image":
        for metric in ("psnr", "ssim"):
            fig, ax = plt.subplots(figsize=(6, 4))
            for fmt, curve in result["baselines"].items():
                ax.plot([p["bpp"] for p in curve], [p[metric] for p in curve], "--o", ms=3, label=fmt.upper())
            for name, entry in result["tokenizers"].items():
                if not entry["per_item"]:
                    continue
                pixels = entry["mean"]["bits"] / entry["mean"]["bpp"]
                if entry.get("curve"):
                    ax.plot([p["bits"] / pixels for p in entry["curve"]], [p[metric] for p in entry["curve"]], "-s", ms=3, label=name)
                else:
                    ax.plot([entry["mean"]["bpp"]], [entry["mean"][metric]], "s", ms=7, label=name)
            ax.set_xscale("log")
            out.append(_save_plot(fig, ax, "bits per pixel", metric.upper(), report_dir / f"rd_{metric}.png"))
    else:
        keys = [k for k in ("pesq_wb", "stoi", "mel_distance") if any(
            e["mean"].get(k) is not None for e in result["tokenizers"].values())]
        for metric in keys:
            fig, ax = plt.subplots(figsize=(6, 4))
            for name, entry in [*result["tokenizers"].items(), *((c, {"mean": b[0]}) for c, b in result["baselines"].items())]:
                if entry["mean"].get(metric) is not None:
                    ax.plot([entry["mean"]["kbps"]], [entry["mean"][metric]], "s", ms=7, label=name)
            out.append(_save_plot(fig, ax, "kbps", metric, report_dir / f"rate_{metric}.png"))
    return out


def _save_plot(fig, ax, xlabel: str, ylabel: str, path: Path) -> str:
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(buf.getvalue()))
    return path.name


def _fmt(v) -> str:
    return "n/a" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))


def _html(result: dict, samples: list[dict], plots: list[str]) -> str:
    e = html.escape
    rows = []
    metric_names = sorted({k for t in result["tokenizers"].values() for k in t["mean"]})
    rows.append("<tr><th>tokenizer</th>" + "".join(f"<th>{e(m)}</th>" for m in metric_names) + "</tr>")
    for name, t in result["tokenizers"].items():
        rows.append(f"<tr><td>{e(name)}</td>" + "".join(f"<td>{_fmt(t['mean'].get(m))}</td>" for m in metric_names) + "</tr>")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>zoo eval</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px 8px}img{max-width:100%;image-rendering:pixelated}.s{margin:1em 0}.plots{display:flex;flex-wrap:wrap;"
        "gap:1em}.plots img{width:480px}</style></head><body>",
        f"<h1>zoo eval: {e(', '.join(result['tokenizers']))}</h1>",
        f"<p>{len(result['items'])} {e(result['modality'])} item(s).</p>",
        "<h2>Means</h2><table>", *rows, "</table>",
    ]
    if result["baselines"] and result["modality"] != "image":
        parts.append("<h2>Classical codecs</h2><table>" + rows[0].replace("tokenizer", "codec"))
        parts += [f"<tr><td>{e(c)}</td>" + "".join(f"<td>{_fmt(b[0].get(m))}</td>" for m in metric_names) + "</tr>"
                  for c, b in result["baselines"].items()]
        parts.append("</table>")
    elif result["baselines"]:
        parts.append("<h2>Classical codecs</h2><table><tr><th>codec</th><th>quality / size</th><th>bpp</th><th>PSNR</th>"
                     "<th>SSIM</th></tr>")
        for fmt, curve in result["baselines"].items():
            for p in curve:
                setting = p["quality"] if "quality" in p else f"{p['side']}x{p['side']}"
                parts.append(f"<tr><td>{fmt.upper()}</td><td>{setting}</td><td>{p['bpp']:.3f}</td>"
                             f"<td>{p['psnr']:.2f}</td><td>{p['ssim']:.3f}</td></tr>")
        parts.append("</table>")
    if plots:
        parts.append("<h2>Plots</h2><div class='plots'>" + "".join(f"<img src='{e(p)}' alt='{e(p)}'>" for p in plots) + "</div>")
    parts.append("<h2>Samples</h2>")
    if result["modality"] == "image":
        parts.append("<p>original | reconstruction | |error| x4</p>")
    for s in samples:
        parts.append(f"<div class='s'><b>{e(s['name'])}</b> {e(s['key'])}<br><img src='{e(s['image'])}' alt='sample'>")
        if "orig" in s:
            parts.append(f"<br>original <audio controls src='{e(s['orig'])}'></audio> "
                         f"reconstruction <audio controls src='{e(s['recon'])}'></audio>")
        parts.append("</div>")
    if result.get("failures"):
        parts.append("<h2>Items that failed</h2><ul>" + "".join(f"<li>{e(f)}</li>" for f in result["failures"]) + "</ul>")
    if result["unavailable"]:
        parts.append("<h2>Not measured</h2><ul>" + "".join(f"<li>{e(u)}</li>" for u in result["unavailable"]) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
