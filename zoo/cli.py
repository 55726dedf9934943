"""The `zoo` command: list, inspect, encode, decode, reconstruct, convert, publish.

    zoo list [PATTERN]
    zoo info NAME
    zoo encode NAME INPUT... --out DIR
    zoo decode NAME TOKENS... --out DIR
    zoo reconstruct NAME INPUT... --out DIR [--metrics]
    zoo convert FAMILY --checkpoint FILE [--config FILE] --out DIR
    zoo eval NAME... DATA --report DIR
    zoo bench NAME [--device D] [--precision P] [--batch-size B] [--seconds S | --image-size N] [--compile]
    zoo cards [--check]
    zoo push DIR REPO_ID

encode, decode, reconstruct, eval and bench take --device, --precision and --compile.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

EPILOG = "Model names: `zoo list`. A NAME may also be a folder in zoo format or a hub repo id."


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _parse_options(pairs: list[str] | None) -> dict:
    opts = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise SystemExit(f"zoo: --option takes KEY=VALUE; got {pair!r}.")
        k, v = pair.split("=", 1)
        if not k.isidentifier():
            raise SystemExit(f"zoo: an option name must be a Python identifier (KEY=VALUE, e.g. num_tokens=32); "
                             f"got {k!r} in {pair!r}.")
        if k in opts:
            raise SystemExit(f"zoo: the option {k!r} is given twice; give it once.")
        try:
            opts[k] = json.loads(v)
        except json.JSONDecodeError:
            opts[k] = v
    return opts


def _device(args) -> str:
    """--device; under torchrun with CUDA, 'auto' and 'cuda' mean this rank's GPU, cuda:LOCAL_RANK."""
    device = getattr(args, "device", None) or "auto"
    local_rank = os.environ.get("LOCAL_RANK")
    if local_rank is not None and device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            return f"cuda:{int(local_rank)}"
    return device


# Commands that write or read token ids (or measure them): a VAE's continuous latents have none.
_TOKEN_COMMANDS = {"encode": "write", "decode": "read", "eval": "measure", "bench": "time"}


def _refuse_latents(name: str, command: str, model=None) -> None:
    """One line for a VAE given to a command that needs token ids (checked by name before loading, then by type)."""
    from zoo import api, registry

    if model is None:
        entry = registry.catalogue().get(name)
        is_vae = entry is not None and entry[1].kind == "vae"
    else:
        is_vae = isinstance(model, api.Autoencoder)
    if is_vae and command in _TOKEN_COMMANDS:
        raise SystemExit(f"zoo: {name} is a VAE: it encodes images to continuous latents, not token ids, so `zoo {command}` has "
                         f"no tokens to {_TOKEN_COMMANDS[command]}. Use `zoo reconstruct {name} IMAGES --out DIR --metrics`, "
                         f"or zoo.load({name!r}).encode(images) in Python for the latents.")


def _load(name: str, args=None):
    import zoo

    command = getattr(args, "command", None)
    _refuse_latents(name, command)
    kw = {}
    if args is not None and hasattr(args, "precision"):
        kw = {"device": _device(args), "precision": args.precision, "compile": args.compile}
    try:
        model = zoo.load(name, **kw)
    except (KeyError, FileNotFoundError, ValueError, TypeError) as e:
        raise SystemExit(f"zoo: {e.args[0] if e.args else e}")
    _refuse_latents(name, command, model)
    return model


def _write_media(tok, recon, out_base: Path, tokens=None) -> Path:
    from zoo import media

    # the rate of the decoded audio is the model's (never the tokens' metadata, which a file can say anything in)
    sr = getattr(tok, "output_sample_rate", None) or getattr(tok, "sample_rate", None)
    return media.save_media(out_base, recon.cpu() if hasattr(recon, "cpu") else recon, tok.modality, sample_rate=sr)


_FATAL_ERRNOS = {"ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM"}


def _fatal_write_error(e: BaseException, where) -> None:
    """A full disk or a read-only / forbidden output stops the run with a sentence (every later item would fail too)."""
    import errno

    if isinstance(e, OSError) and errno.errorcode.get(e.errno or 0) in _FATAL_ERRNOS:
        raise SystemExit(f"zoo: cannot write {e.filename or where} ({e.strerror}); free space or give a writable --out. "
                         f"Files written so far are complete.")


def _out_dir(out, inputs=()) -> Path:
    from zoo import pipelines

    try:
        return pipelines.prepare_out_dir(out, inputs)
    except ValueError as e:
        raise SystemExit(f"zoo: {e}")


def _run_over_files(args, work) -> int:
    """Read each input, batch same-shape items, run `work(tok, x, kwargs, keys, out_bases)`;
    report unreadable files unless --strict."""
    import torch
    from tqdm import tqdm

    from zoo import pipelines
    from zoo.media import SUFFIXES

    tok = _load(args.name, args)
    _check_encode_kwargs(tok, _encode_kwargs(args))  # the callers' own encode kwargs, parsed from the same args
    try:
        items = pipelines.discover(args.inputs, SUFFIXES[tok.modality])
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"zoo: {e}")
    if not items:
        raise SystemExit(f"zoo: no {tok.modality} files ({', '.join(SUFFIXES[tok.modality])}) in {' '.join(args.inputs)}")
    out = _out_dir(args.out, args.inputs)
    clashes = pipelines.output_collisions([i.key for i in items])
    if clashes:
        raise SystemExit(f"zoo: {len(clashes)} pair(s) of inputs would write the same output: {'; '.join(clashes[:5])}. "
                         f"Rename one of each pair or run them into different --out folders.")
    failures, bases = [], {}
    for i, item in enumerate(items):
        try:
            bases[i] = pipelines.output_path(out, item.key)
        except ValueError as e:
            failures.append(f"{item.key}: {e}")
    todo = [items[i] for i in sorted(bases)]
    todo_bases = [bases[i] for i in sorted(bases)]
    stream = pipelines.iter_media(todo, tok.modality, num_workers=args.num_workers, mono=args.mono,
                                  size=getattr(tok, "input_size", None), tokenizer=tok)
    bar = tqdm(total=len(items), unit="item", disable=args.quiet)
    with torch.inference_mode():
        for batch in pipelines.batched(stream, args.batch_size):
            if batch[0][3] is not None:
                failures.append(batch[0][3])
            else:
                for part, res, err in pipelines.run_split(
                        lambda part: work(tok, torch.cat([b[1] for b in part]), part[0][2],
                                          [todo[b[0]].key for b in part], [todo_bases[b[0]] for b in part]), batch):
                    if err is not None:
                        _fatal_write_error(err, out)
                        failures += [f"{todo[b[0]].key}: {pipelines.describe_error(err)}" for b in part]
                    else:
                        failures += res or []  # per-item failures after the batch ran (a write, a metric)
            if failures and args.strict:
                raise SystemExit(f"zoo: {failures[0]}")
            bar.update(len(batch))
    bar.close()
    return _report(failures, len(items))


def _report(failures, total) -> int:
    if failures:
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        print(f"zoo: {len(failures)} of {total} item(s) failed (listed above); the others were written.", file=sys.stderr)
        return 1
    return 0


def _dist_env() -> tuple[int, int]:
    """Rank and world size from torchrun's environment (1 process when run plainly)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _encode_kwargs(args) -> dict:
    kw = _parse_options(getattr(args, "option", None))
    if getattr(args, "num_tokens", None) is not None:
        kw["num_tokens"] = args.num_tokens
    if getattr(args, "target_psnr", None) is not None:
        kw["target_psnr"] = args.target_psnr
    return kw


def _check_encode_kwargs(tok, kw: dict) -> None:
    """Refuse, by name, encode() options this model's encode does not take (instead of a TypeError per batch)."""
    import inspect

    supplied = sorted(set(kw) & {"sample_rate"}) if tok.modality == "audio" else []
    if supplied:
        raise SystemExit(f"zoo: -o {supplied[0]} is read from each file's header; remove the option.")
    params = inspect.signature(tok.encode).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    bad = sorted(set(kw) - set(params))
    if bad:
        takes = [n for n, p in list(params.items())[1:] if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        raise SystemExit(f"zoo: {type(tok).__name__}.encode() takes no {', '.join(bad)}; its options: "
                         f"{', '.join(takes) or 'none'}.")


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
        rows.append((name, spec.name, registry.model_class(spec, v).modality, v.kind, weights))
    if not rows:
        print(f"no model matches {args.pattern!r}" if args.pattern else "no models in the catalogue yet")
        return 1 if args.pattern else 0
    w = max(len(r[0]) for r in rows)
    print(f"{'name':<{w}}  {'family':<13} {'modality':<8} {'kind':<9} weights")
    for r in rows:
        print(f"{r[0]:<{w}}  {r[1]:<13} {r[2]:<8} {r[3]:<9} {r[4]}")
    if any(r[3] == "vae" for r in rows):
        print("kind vae: a continuous autoencoder (latents, no token ids): zoo reconstruct runs it, zoo encode / decode do not.")
    return 0


def cmd_info(args) -> int:
    import torch

    from zoo import api, registry

    try:
        spec, v = registry.lookup(args.name)
    except KeyError as e:
        raise SystemExit(f"zoo: {e.args[0]}")
    with torch.device("meta"):
        model = registry.model_class(spec, v)(v.config)
    info = {
        "name": v.name,
        "family": spec.name,
        "modality": model.modality,
        "kind": v.kind,
        "description": v.description,
        "parameters": model.num_parameters(),
    }
    if isinstance(model, api.Autoencoder):
        info["output"] = f"continuous latents [{model.latent_channels}, H/{model.downsample_factor}, W/{model.downsample_factor}], no token ids"
        info["latent_channels"] = model.latent_channels
        info["downsample_factor"] = model.downsample_factor
    else:
        info.update(codebook_size=model.codebook_size, num_codebooks=model.num_codebooks, token_rate=model.token_rate)
    info |= {
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
    if args.per_file:

        def work(tok, x, kw, keys, outs):
            tokens = tok.encode(x, **kw, **kw_extra)
            failed = []
            for i, (key, o) in enumerate(zip(keys, outs)):
                t = tokens[i]
                t.meta["source"] = key
                try:
                    t.save(o.with_name(o.name + ".tokens"))
                except OSError as e:
                    _fatal_write_error(e, o)
                    failed.append(f"{key}: could not write {o.name}.tokens ({e.strerror or e})")
            return failed

        return _run_over_files(args, work)

    from zoo import pipelines

    tok = _load(args.name, args)
    _check_encode_kwargs(tok, kw_extra)
    rank, world = _dist_env()
    _out_dir(args.out, args.inputs)
    try:
        s = pipelines.encode_dataset(
            tok, args.inputs, args.out, shard_size=args.shard_size, batch_size=args.batch_size,
            num_workers=args.num_workers, rank=rank, world_size=world, strict=args.strict, mono=args.mono,
            encode_kwargs=kw_extra, progress=not args.quiet,
        )
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"zoo: {e}")
    except OSError as e:
        _fatal_write_error(e, args.out)
        raise
    print(f"rank {rank}/{world}: {s.items_encoded} item(s) encoded into {s.shards_written} shard(s), "
          f"{s.shards_skipped} finished shard(s) skipped, {len(s.failures)} failure(s)")
    return _report(s.failures, s.items_encoded + len(s.failures))


def cmd_reconstruct(args) -> int:
    enc_kw, dec_kw = _encode_kwargs(args), _decode_kwargs(args)
    results = []

    def work(tok, x, kw, paths, outs):
        import torch

        from zoo import metrics
        from zoo.inputs import prepare_audio

        tokens = tok.encode(x, **kw, **enc_kw)  # a VAE gives latents [B, C, h, w] instead of Tokens
        recon = tok.decode(tokens, **dec_kw)
        recon = recon.cpu() if hasattr(recon, "cpu") else recon  # metrics and files on the CPU
        failed = []
        for i, (p, o) in enumerate(zip(paths, outs)):
            try:
                written = _write_media(tok, recon[i], o, tokens[i])
            except (OSError, ValueError) as e:
                _fatal_write_error(e, o)
                failed.append(f"{p}: could not write its reconstruction ({e})")
                continue
            row = {"input": str(p), "output": str(written)}
            if isinstance(tokens, torch.Tensor):
                row["latent_shape"] = list(tokens.shape[1:])
            else:
                row["tokens"] = int(tokens[i].unpadded()[0].numel())  # lengths
            if args.metrics:
                try:
                    if tok.modality == "image":
                        row["psnr_db"] = round(float(metrics.psnr(recon[i : i + 1].clamp(0, 1), x[i : i + 1])), 3)
                    elif tok.modality == "audio":
                        ref = prepare_audio(x[i : i + 1], name="zoo", sample_rate=kw["sample_rate"],
                                            model_rate=tok.sample_rate, channels=x.shape[1])
                        est = recon[i : i + 1][..., : ref.shape[-1]]
                        ref = ref[..., : est.shape[-1]].mean(1, keepdim=True)
                        row["si_sdr_db"] = round(float(metrics.si_sdr(est, ref)), 3)
                        row["mel_distance"] = round(float(metrics.mel_distance(est, ref, tok.sample_rate)), 4)
                except Exception as e:  # noqa: BLE001 - the reconstruction is written; its metrics are reported missing
                    from zoo.pipelines import describe_error

                    row["metrics_error"] = describe_error(e)
                    failed.append(f"{p}: reconstruction written, metrics not computed: {describe_error(e)}")
            results.append(row)
            print(json.dumps(row))
        return failed

    rc = _run_over_files(args, work)
    if args.metrics and results:
        from zoo.io import atomic_write_text

        atomic_write_text(Path(args.out) / "metrics.json", json.dumps(results, indent=2) + "\n")
    return rc


def cmd_decode(args) -> int:
    import torch
    from tqdm import tqdm

    from zoo import pipelines

    tok = _load(args.name, args)
    dec_kw = _decode_kwargs(args)
    try:
        files = list(pipelines.iter_token_files(args.inputs))
    except FileNotFoundError as e:
        raise SystemExit(f"zoo: {e}")
    out = _out_dir(args.out)
    failures, n, total, written = [], 0, 0, {}

    def fail(msg):
        if args.strict:
            raise SystemExit(f"zoo: {msg}")
        failures.append(msg)

    with torch.inference_mode():
        for f, folder in tqdm(files, unit="file", disable=args.quiet):
            try:  # one damaged file is reported by name; the others are decoded
                records = pipelines.read_token_file(f, folder)
            except (ValueError, OSError) as e:
                total += 1
                fail(f"{f}: {pipelines.describe_error(e)}")
                continue
            for key, tokens in records:
                total += 1
                try:
                    if not tokens.meta.get("family"):
                        raise ValueError(f"the tokens in {f.name} carry no family in their metadata, so nothing says "
                                         f"which model made them; zoo decode reads files written by zoo encode.")
                    base = pipelines.output_path(out, key)
                    if base in written:
                        raise ValueError(f"its output {base}.* was already written for {written[base]} (same key); "
                                         f"not overwritten.")
                    recon = tok.decode(tokens, **dec_kw)
                    _write_media(tok, recon[0], base, tokens)
                    written[base] = f"{key} in {f.name}"
                    n += 1
                except Exception as e:  # noqa: BLE001 - reported by key and file; the run goes on
                    _fatal_write_error(e, out)
                    fail(f"{key} ({f}): {pipelines.describe_error(e)}")
    if total == 0:
        raise SystemExit(f"zoo: no .tokens or token shard files in {' '.join(args.inputs)}.")
    return _report(failures, total)


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
    from zoo.io import atomic_write_text

    atomic_write_text(path, text)
    print(f"wrote {path}")
    return 0


def cmd_eval(args) -> int:
    import shlex

    from zoo.pipelines.evaluate import evaluate

    if len(args.args) < 2:
        raise SystemExit("zoo eval takes one or more model names, then the data: zoo eval NAME [NAME ...] DATA --report DIR")
    names, data = args.args[:-1], args.args[-1]
    if args.max_items < 1 or args.samples < 0:
        raise SystemExit("zoo: --max-items must be at least 1 and --samples at least 0.")
    toks = {n: _load(n, args) for n in names}
    _out_dir(args.report, [data] if Path(data).exists() else [])
    try:
        result = evaluate(toks, [data], args.report, max_items=args.max_items, samples=args.samples,
                          rfid=not args.no_rfid, progress=not args.quiet, split=args.split, crop=args.crop,
                          num_tokens=args.num_tokens, steps=args.steps, seed=args.seed,
                          command="zoo " + shlex.join(args.argv))
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"zoo: {e}")
    for name, entry in result["tokenizers"].items():
        print(name, json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in entry["mean"].items()}))
    for u in result["unavailable"]:
        print(f"not measured: {u}", file=sys.stderr)
    print(f"wrote {Path(args.report) / 'report.html'}")
    return _report(result.get("failures", []), len(result["items"]) * len(toks))


def cmd_bench(args) -> int:
    from zoo.pipelines.bench import bench

    tok = _load(args.name, args)
    reference = None
    if args.against == "fp32":
        reference = _load(args.name, argparse.Namespace(device=args.device, precision="fp32", compile=False))
    try:
        row = bench(tok, batch_size=args.batch_size, seconds=args.seconds, image_size=args.image_size,
                    repeats=args.repeats, reference=reference)
    except ValueError as e:
        raise SystemExit(f"zoo: {e}")
    if args.json:
        print(json.dumps(row))
    else:
        w = max(len(k) for k in row)
        for k, v in row.items():
            print(f"{k:<{w}}  {v}")
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
        s.add_argument("--num-workers", type=int, default=0, help="processes that read and decode files")
        s.add_argument("--strict", action="store_true", help="stop at the first unreadable file instead of reporting it")
        s.add_argument("--mono", action="store_true", help="audio: mix multi-channel input down to mono")
        s.add_argument("--num-tokens", type=int, help="variable-length families: tokens per item")
        s.add_argument("--target-psnr", type=float, metavar="DB",
                       help="one-d-piece, flextok, selftok: per item, the fewest tokens whose reconstruction "
                            "reaches this PSNR (flow decoders search with fixed noise: seed 0, default steps)")
        s.add_argument("--option", "-o", action="append", metavar="KEY=VALUE", help="extra encode() argument (JSON value)")
        s.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
        runtime_args(s)

    def runtime_args(s):
        s.add_argument("--device", default="auto", help="'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when present; under "
                       "torchrun each rank takes cuda:LOCAL_RANK)")
        s.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                       help="fp32 (the official numerics) or bf16 / fp16 (quantizers and spectral front ends stay fp32)")
        s.add_argument("--compile", action="store_true", help="torch.compile the model (slow first call, faster after)")

    def decode_args(s):
        s.add_argument("--steps", type=int, help="sampling steps for generative decoders")
        s.add_argument("--seed", type=int, help="seed for stochastic decoders")
        s.add_argument("--decode-option", action="append", metavar="KEY=VALUE", help="extra decode() argument (JSON value)")

    s = sub.add_parser("encode", help="media -> token shards (or .tokens files)",
                       description="Encode media files, folders or .tar shards into token shards (resumable; under torchrun "
                                   "each rank takes every WORLD_SIZE-th shard). --per-file writes one .tokens file per input.")
    media_args(s, "media")
    s.add_argument("--shard-size", type=int, default=1000, help="items per token shard")
    s.add_argument("--per-file", action="store_true", help="write one .tokens file per input instead of shards")
    s.set_defaults(fn=cmd_encode)

    s = sub.add_parser("reconstruct", help="media -> tokens -> media", description="Encode and decode media; write the reconstructions (and metrics with --metrics).")
    media_args(s, "media")
    decode_args(s)
    s.add_argument("--metrics", action="store_true", help="print and save metrics.json (PSNR for images; SI-SDR and mel distance for audio)")
    s.set_defaults(fn=cmd_reconstruct)

    s = sub.add_parser("decode", help="token shards / .tokens files -> media",
                       description="Decode token shards or .tokens files (from `zoo encode`) back to media files named by their keys.")
    s.add_argument("name")
    s.add_argument("inputs", nargs="+", metavar="TOKENS")
    s.add_argument("--out", required=True)
    s.add_argument("--strict", action="store_true")
    s.add_argument("--quiet", "-q", action="store_true")
    decode_args(s)
    runtime_args(s)
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

    s = sub.add_parser("eval", help="measure tokenizers on a dataset; write metrics.json and report.html",
                       description="Run one or more tokenizers over a dataset (files, folders, .tar shards) and write "
                                   "metrics.json, report.html with samples, and rate-distortion plots; images are compared "
                                   "with JPEG and WebP at the same bytes.")
    s.add_argument("args", nargs="+", metavar="NAME... DATA", help="model names, then the data")
    s.add_argument("--report", required=True, help="output folder")
    s.add_argument("--max-items", type=int, default=16)
    s.add_argument("--samples", type=int, default=4, help="items shown in the report")
    s.add_argument("--no-rfid", action="store_true", help="skip rFID (the Inception network is slow on CPU)")
    s.add_argument("--split", choices=("photos", "speech", "meshes"), help="measure only the held-out items of recipes/splits.yaml")
    s.add_argument("--crop", type=int, help="cut images into CROP x CROP tiles (CROP/2 grid) instead of resizing them")
    s.add_argument("--num-tokens", type=int, nargs="+", help="prefix lengths of variable-length families' curves")
    s.add_argument("--steps", type=int, nargs="+", help="sampler steps of stochastic decoders (one entry per value)")
    s.add_argument("--seed", type=int, default=0, help="noise seed of stochastic decoders")
    s.add_argument("--quiet", "-q", action="store_true")
    runtime_args(s)
    s.set_defaults(fn=cmd_eval)

    s = sub.add_parser("bench", help="time encode and decode: items/s, real-time factor, peak memory",
                       description="Time a model's encode and decode on random input of its native size (weights as "
                                   "loaded): items/s, real-time factor for audio, peak memory (RSS on CPU, "
                                   "max_memory_allocated on CUDA); with --against fp32, the share of ids equal to fp32 "
                                   "and the decode difference (PSNR for images, SI-SDR for audio).")
    s.add_argument("name")
    s.add_argument("--batch-size", type=int, default=1)
    s.add_argument("--seconds", type=float, default=10.0, help="audio: clip length")
    s.add_argument("--image-size", type=int, help="images: side (default: the model's input size)")
    s.add_argument("--repeats", type=int, default=3, help="timed calls after one warm-up; the minimum is reported")
    s.add_argument("--against", choices=("fp32",), help="compare ids and outputs with the fp32 model")
    s.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    runtime_args(s)
    s.set_defaults(fn=cmd_bench)

    s = sub.add_parser("push", help="upload a zoo folder to the hub", description="Upload config.json, model.safetensors and README.md of a zoo folder to a hub repo.")
    s.add_argument("dir")
    s.add_argument("repo_id")
    s.add_argument("--private", action="store_true")
    s.set_defaults(fn=cmd_push)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded by zoo eval in card/<name>.json
    if getattr(args, "batch_size", 1) is not None and getattr(args, "batch_size", 1) < 1:
        raise SystemExit("zoo: --batch-size must be at least 1.")
    for flag in ("num_workers", "shard_size", "num_tokens", "steps"):
        least = 0 if flag == "num_workers" else 1
        v = getattr(args, flag, None)
        if v is not None and min(v if isinstance(v, list) else [v]) < least:
            raise SystemExit(f"zoo: --{flag.replace('_', '-')} must be at least {least}; got {v}.")
    if os.environ.get("ZOO_KEEP_FREED_MEMORY", "1") != "0":
        from zoo.runtime import keep_freed_cpu_memory

        keep_freed_cpu_memory()  # our process: big CPU activations reuse memory instead of faulting in fresh pages
    try:
        return int(args.fn(args) or 0)
    except OSError as e:  # a full disk, a read-only folder: a sentence, not a traceback
        where = f" ({e.filename})" if e.filename else ""
        raise SystemExit(f"zoo: {e.strerror or e}{where}.") from e


if __name__ == "__main__":
    sys.exit(main())
