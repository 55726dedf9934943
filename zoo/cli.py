"""The `zoo` command: list, inspect, encode, decode, reconstruct, convert, publish.

    zoo list [PATTERN]
    zoo info NAME
    zoo encode NAME INPUT... --out DIR
    zoo decode NAME TOKENS... --out DIR
    zoo reconstruct NAME INPUT... --out DIR [--metrics]
    zoo convert FAMILY --checkpoint FILE [--config FILE] --out DIR
    zoo cards [--check]
    zoo push DIR REPO_ID
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EPILOG = "Model names: `zoo list`. A NAME may also be a folder in zoo format or a hub repo id."


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _collect(inputs: list[str], suffixes: tuple[str, ...]) -> list[tuple[Path, Path]]:
    """Expand files and folders -> [(file, path relative to its root)], sorted, suffix-filtered in folders."""
    out = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in suffixes)
            if not files:
                raise SystemExit(f"zoo: folder {p} holds no files ending in {', '.join(suffixes)}.")
            out += [(f, f.relative_to(p)) for f in files]
        elif p.is_file():
            out.append((p, Path(p.name)))
        else:
            raise SystemExit(f"zoo: no such file or folder: {p}")
    return out


def _parse_options(pairs: list[str] | None) -> dict:
    opts = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise SystemExit(f"zoo: --option takes KEY=VALUE; got {pair!r}.")
        k, v = pair.split("=", 1)
        try:
            opts[k] = json.loads(v)
        except json.JSONDecodeError:
            opts[k] = v
    return opts


def _load(name: str):
    import zoo

    try:
        return zoo.load(name)
    except (KeyError, FileNotFoundError, ValueError, TypeError) as e:
        raise SystemExit(f"zoo: {e.args[0] if e.args else e}")


def _read_media(tok, path: Path, args):
    """path -> (batchable tensor [1, ...], encode kwargs)."""
    from zoo import media

    if tok.modality == "audio":
        audio, sr = media.load_audio(path)
        if args.mono and audio.shape[0] > 1:
            audio = media.to_mono(audio)
        return audio[None], {"sample_rate": sr}
    if tok.modality == "image":
        img = media.load_image(path)
        size = getattr(tok, "input_size", None)
        if size is not None and tuple(img.shape[-2:]) != tuple(size):
            img = media.resize_center_crop(img, tuple(size))
        return img[None], {}
    if tok.modality == "3d":
        from zoo.media import mesh as mesh_io

        return mesh_io.load_points_for(tok, path), {}
    raise SystemExit(f"zoo: unsupported modality {tok.modality!r}")


def _write_media(tok, recon, out_base: Path, tokens=None) -> Path:
    from zoo import media

    if tok.modality == "audio":
        sr = (tokens.meta.get("sample_rate") if tokens is not None else None) or tok.sample_rate
        return media.save_audio(out_base.with_suffix(".wav"), recon.reshape(-1, recon.shape[-1]), sr)
    if tok.modality == "image":
        return media.save_image(out_base.with_suffix(".png"), recon)
    if tok.modality == "3d":
        from zoo.media import mesh as mesh_io

        return mesh_io.save_decoded(out_base, recon)
    raise SystemExit(f"zoo: unsupported modality {tok.modality!r}")


def _batches(items, batch_size):
    """Group consecutive items whose tensors share a shape and kwargs, up to batch_size."""
    batch = []
    for it in items:
        if batch and (len(batch) == batch_size or batch[0][1].shape[1:] != it[1].shape[1:] or batch[0][2] != it[2]):
            yield batch
            batch = []
        batch.append(it)
    if batch:
        yield batch


def _run_over_files(args, work) -> int:
    """Read each input, batch, run `work(tok, batch)`; report unreadable files unless --strict."""
    import torch
    from tqdm import tqdm

    from zoo.media import SUFFIXES

    tok = _load(args.name)
    files = _collect(args.inputs, SUFFIXES[tok.modality])
    out = Path(args.out)
    failures = []

    def readable():
        for path, rel in files:
            try:
                x, kw = _read_media(tok, path, args)
            except (ValueError, OSError) as e:
                if args.strict:
                    raise SystemExit(f"zoo: {e}")
                failures.append((str(path), str(e)))
                continue
            yield (path, x, kw, rel)

    bar = tqdm(total=len(files), unit="file", disable=args.quiet)
    with torch.inference_mode():
        for batch in _batches(((p, x, kw, rel) for p, x, kw, rel in readable()), args.batch_size):
            x = torch.cat([b[1] for b in batch])
            try:
                work(tok, x, batch[0][2], [b[0] for b in batch], [out / b[3] for b in batch])
            except ValueError as e:
                if args.strict:
                    raise SystemExit(f"zoo: {e}")
                failures += [(str(b[0]), str(e)) for b in batch]
            bar.update(len(batch))
    bar.close()
    if failures:
        print(f"zoo: {len(failures)} of {len(files)} file(s) failed:", file=sys.stderr)
        for p, e in failures:
            print(f"  {p}: {e}", file=sys.stderr)
        return 1
    return 0


def _encode_kwargs(args) -> dict:
    kw = _parse_options(getattr(args, "option", None))
    if getattr(args, "num_tokens", None) is not None:
        kw["num_tokens"] = args.num_tokens
    return kw


def _decode_kwargs(args) -> dict:
    kw = _parse_options(getattr(args, "decode_option", None))
    if getattr(args, "steps", None) is not None:
        kw["steps"] = args.steps
    if getattr(args, "seed", None) is not None:
        import torch

        kw["generator"] = torch.Generator().manual_seed(args.seed)
    return kw


# ----------------------------------------------------------------------------------------------
# commands
# ----------------------------------------------------------------------------------------------
def cmd_list(args) -> int:
    from zoo import registry

    rows = []
    for name in registry.list_models(args.pattern):
        spec, v = registry.lookup(name)
        if v.pretrained is not None:
            weights = "official" if v.official else "hub"
        else:
            weights = "embedded" if v.embedded else "none"
        if v.embedded and v.pretrained is not None:
            weights += "+embedded"
        rows.append((name, spec.name, spec.tokenizer.modality, weights))
    if not rows:
        print(f"no model matches {args.pattern!r}" if args.pattern else "no models in the catalogue yet")
        return 1 if args.pattern else 0
    w = max(len(r[0]) for r in rows)
    print(f"{'name':<{w}}  {'family':<13} {'modality':<8} weights")
    for r in rows:
        print(f"{r[0]:<{w}}  {r[1]:<13} {r[2]:<8} {r[3]}")
    return 0


def cmd_info(args) -> int:
    import torch

    from zoo import api, registry

    try:
        spec, v = registry.lookup(args.name)
    except KeyError as e:
        raise SystemExit(f"zoo: {e.args[0]}")
    with torch.device("meta"):
        model = spec.tokenizer(v.config)
    info = {
        "name": v.name,
        "family": spec.name,
        "modality": spec.tokenizer.modality,
        "description": v.description,
        "parameters": model.num_parameters(),
        "codebook_size": model.codebook_size,
        "num_codebooks": model.num_codebooks,
        "token_rate": model.token_rate,
        "source": v.pretrained.hub_id if v.pretrained else (f"models/{v.embedded}" if v.embedded else None),
        "file": v.pretrained.filename if v.pretrained else None,
        "revision": v.pretrained.revision if v.pretrained else None,
        "license": v.pretrained.license if v.pretrained else None,
        "paper": spec.paper,
        "official": v.official,
        "config": api.config_to_dict(v.config),
    }
    print(json.dumps(info, indent=2))
    return 0


def cmd_encode(args) -> int:
    kw_extra = _encode_kwargs(args)

    def work(tok, x, kw, paths, outs):
        tokens = tok.encode(x, **kw, **kw_extra)
        for i, (p, o) in enumerate(zip(paths, outs)):
            t = tokens[i]
            t.meta["source"] = str(p)
            t.save(o.with_suffix(".tokens"))

    return _run_over_files(args, work)


def cmd_reconstruct(args) -> int:
    enc_kw, dec_kw = _encode_kwargs(args), _decode_kwargs(args)
    results = []

    def work(tok, x, kw, paths, outs):
        import torch

        from zoo import metrics
        from zoo.api import prepare_audio

        tokens = tok.encode(x, **kw, **enc_kw)
        recon = tok.decode(tokens, **dec_kw)
        for i, (p, o) in enumerate(zip(paths, outs)):
            written = _write_media(tok, recon[i], o, tokens[i])
            row = {"input": str(p), "output": str(written), "tokens": int(tokens[i].ids.numel())}
            if args.metrics:
                if tok.modality == "image":
                    row["psnr_db"] = round(float(metrics.psnr(recon[i : i + 1].clamp(0, 1), x[i : i + 1])), 3)
                elif tok.modality == "audio":
                    ref = prepare_audio(x[i : i + 1], name="zoo", sample_rate=kw["sample_rate"], model_rate=tok.sample_rate,
                                        channels=x.shape[1])
                    est = recon[i : i + 1][..., : ref.shape[-1]]
                    ref = ref[..., : est.shape[-1]].mean(1, keepdim=True)
                    row["si_sdr_db"] = round(float(metrics.si_sdr(est, ref)), 3)
                    row["mel_distance"] = round(float(metrics.mel_distance(est, ref, tok.sample_rate)), 4)
            results.append(row)
            print(json.dumps(row))

    rc = _run_over_files(args, work)
    if args.metrics and results:
        from zoo.api import atomic_write_text

        atomic_write_text(Path(args.out) / "metrics.json", json.dumps(results, indent=2) + "\n")
    return rc


def cmd_decode(args) -> int:
    import torch
    from tqdm import tqdm

    from zoo.api import Tokens

    tok = _load(args.name)
    files = _collect(args.inputs, (".tokens",))
    out = Path(args.out)
    dec_kw = _decode_kwargs(args)
    failures = []
    with torch.inference_mode():
        for path, rel in tqdm(files, unit="file", disable=args.quiet):
            try:
                tokens = Tokens.load(path)
                recon = tok.decode(tokens, **dec_kw)
                _write_media(tok, recon[0], out / rel.with_suffix(""), tokens)
            except (ValueError, OSError) as e:
                if args.strict:
                    raise SystemExit(f"zoo: {path}: {e}")
                failures.append((path, e))
    for p, e in failures:
        print(f"zoo: {p}: {e}", file=sys.stderr)
    return 1 if failures else 0


def cmd_convert(args) -> int:
    import zoo

    try:
        model = zoo.convert(args.family, checkpoint=args.checkpoint, config=args.config)
    except (KeyError, FileNotFoundError, ValueError) as e:
        raise SystemExit(f"zoo: {e.args[0] if e.args else e}")
    model.variant = args.variant
    model.save_pretrained(args.out, source=f"converted from {Path(args.checkpoint).name}")
    print(f"wrote {args.out} ({model.num_parameters() / 1e6:.2f} M parameters)")
    return 0


def cmd_cards(args) -> int:
    from zoo import cards

    text = cards.render_model_cards()
    path = Path(args.path)
    if args.check:
        if not path.is_file() or path.read_text() != text:
            print(f"{path} is out of date; run `zoo cards`.", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    from zoo.api import atomic_write_text

    atomic_write_text(path, text)
    print(f"wrote {path}")
    return 0


def cmd_push(args) -> int:
    from zoo import hub

    try:
        info = hub.push_folder(args.dir, args.repo_id, private=args.private)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"zoo: {e}")
    print(info)
    return 0


# ----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zoo", description="The tokenizer model zoo: images, audio and 3D as discrete tokens.", epilog=EPILOG)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("list", help="list catalogue names", description="List catalogue names (glob patterns allowed, e.g. 'wavtokenizer*').")
    s.add_argument("pattern", nargs="?", help="glob pattern over names")
    s.set_defaults(fn=cmd_list)

    s = sub.add_parser("info", help="show a model's config, size, token rate, source and license",
                       description="Show a catalogue entry: config, parameters, token rate, source and license (no weights are loaded).")
    s.add_argument("name")
    s.set_defaults(fn=cmd_info)

    def media_args(s, what):
        s.add_argument("name", help="catalogue name, zoo folder or hub repo id")
        s.add_argument("inputs", nargs="+", metavar="INPUT", help=f"{what} files or folders (searched recursively)")
        s.add_argument("--out", required=True, help="output folder (mirrors the input layout)")
        s.add_argument("--batch-size", type=int, default=8, help="items per forward pass (same-shape items are batched)")
        s.add_argument("--strict", action="store_true", help="stop at the first unreadable file instead of reporting it")
        s.add_argument("--mono", action="store_true", help="audio: mix multi-channel input down to mono")
        s.add_argument("--num-tokens", type=int, help="variable-length families: tokens per item")
        s.add_argument("--option", "-o", action="append", metavar="KEY=VALUE", help="extra encode() argument (JSON value)")
        s.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    def decode_args(s):
        s.add_argument("--steps", type=int, help="sampling steps for generative decoders")
        s.add_argument("--seed", type=int, help="seed for stochastic decoders")
        s.add_argument("--decode-option", action="append", metavar="KEY=VALUE", help="extra decode() argument (JSON value)")

    s = sub.add_parser("encode", help="media files -> .tokens files", description="Encode media files or folders into .tokens files (one per input).")
    media_args(s, "media")
    s.set_defaults(fn=cmd_encode)

    s = sub.add_parser("reconstruct", help="media -> tokens -> media", description="Encode and decode media; write the reconstructions (and metrics with --metrics).")
    media_args(s, "media")
    decode_args(s)
    s.add_argument("--metrics", action="store_true", help="print and save metrics.json (PSNR for images; SI-SDR and mel distance for audio)")
    s.set_defaults(fn=cmd_reconstruct)

    s = sub.add_parser("decode", help=".tokens files -> media", description="Decode .tokens files (from `zoo encode`) back to media.")
    s.add_argument("name")
    s.add_argument("inputs", nargs="+", metavar="TOKENS")
    s.add_argument("--out", required=True)
    s.add_argument("--strict", action="store_true")
    s.add_argument("--quiet", "-q", action="store_true")
    decode_args(s)
    s.set_defaults(fn=cmd_decode)

    s = sub.add_parser("convert", help="official checkpoint -> zoo folder",
                       description="Convert an official checkpoint (and its official config) into a zoo folder (config.json, model.safetensors, README.md).")
    s.add_argument("family", help="family module name, e.g. wavtokenizer")
    s.add_argument("--checkpoint", required=True, help=".ckpt/.bin/.pth/.pt or .safetensors")
    s.add_argument("--config", help="the official config file (YAML/JSON), where the checkpoint does not carry it")
    s.add_argument("--variant", help="catalogue name to record in config.json")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_convert)

    s = sub.add_parser("cards", help="regenerate MODEL_CARDS.md", description="Regenerate MODEL_CARDS.md from the registry and the measured metrics of the embedded models.")
    s.add_argument("--path", default="MODEL_CARDS.md")
    s.add_argument("--check", action="store_true", help="only check that the file is up to date")
    s.set_defaults(fn=cmd_cards)

    s = sub.add_parser("push", help="upload a zoo folder to the hub", description="Upload config.json, model.safetensors and README.md of a zoo folder to a hub repo.")
    s.add_argument("dir")
    s.add_argument("repo_id")
    s.add_argument("--private", action="store_true")
    s.set_defaults(fn=cmd_push)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "batch_size", 1) is not None and getattr(args, "batch_size", 1) < 1:
        raise SystemExit("zoo: --batch-size must be at least 1.")
    return int(args.fn(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
