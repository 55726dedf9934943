"""Start XY-Tokenizer stage 1 from Whisper: a zoo model folder whose semantic encoder holds a
Whisper encoder's weights (and, with --acoustic, the acoustic encoder too), every other part at its
fresh initialisation. Train from it with `model.init_from: <that folder>`.

XY-Tokenizer (arXiv 2506.23325) initialises its semantic encoder from Whisper-small and keeps it
frozen; per summaries of the paper the acoustic encoder also starts from Whisper (not stated in the
released code, which has no training part). Our encoders use Whisper's layout, so the copy is a
rename (zoo.tokenizers.xy_tokenizer.convert.whisper_encoder_state), checked strictly by zoo.hub.

    python training/xy_whisper_init.py --whisper /path/to/whisper-small --out runs/xy_tokenizer/whisper-init
    python training/xy_whisper_init.py --whisper model.safetensors --config my_config.json --out DIR --acoustic

--whisper: openai/whisper-small's `model.safetensors` in the transformers layout, or a folder holding
it. --config: a catalogue name (default xy-tokenizer-16k, whose encoders have Whisper-small's sizes)
or a JSON file of XYTokenizerConfig fields (a zoo folder's config.json works too).
"""


import argparse
import json
import sys
from pathlib import Path

import torch

from zoo import hub, registry
from zoo.tokenizers.xy_tokenizer import XYTokenizer, XYTokenizerConfig
from zoo.tokenizers.xy_tokenizer.convert import whisper_encoder_state


def read_config(name_or_file: str) -> XYTokenizerConfig:
    path = Path(name_or_file)
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        return XYTokenizer.config_from_dict(data.get("config", data))  # a zoo config.json wraps the fields
    variants = {v.name: v.config for v in registry.family("xy_tokenizer").variants}
    if name_or_file not in variants:
        raise ValueError(f"--config {name_or_file!r} is neither a .json file nor an XY-Tokenizer catalogue name ({sorted(variants)}).")
    return variants[name_or_file]


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--whisper", required=True, help="Whisper model.safetensors (transformers layout) or its folder")
    ap.add_argument("--out", required=True, help="zoo model folder to write")
    ap.add_argument("--config", default="xy-tokenizer-16k", help="catalogue name or JSON file of config fields")
    ap.add_argument("--acoustic", action="store_true", help="also initialise the acoustic encoder from Whisper")
    ap.add_argument("--seed", type=int, default=0, help="seed of the parts left at init")
    args = ap.parse_args(argv)

    source = Path(args.whisper)
    if source.is_dir():
        source = source / "model.safetensors"
    state, _ = hub.read_checkpoint(source)
    torch.manual_seed(args.seed)
    model = XYTokenizer(read_config(args.config))
    parts = ("semantic_encoder", "acoustic_encoder") if args.acoustic else ("semantic_encoder",)
    for part in parts:  # every tensor of the part given with its shape, every given tensor used
        hub.load_state_dict_strict(model, whisper_encoder_state(state, part), source=f"The Whisper encoder of {source}",
                                   within=(part + ".",), hint="Pick the config whose encoder matches (the released "
                                                              "xy-tokenizer-16k matches whisper-small).")
    out = model.save_pretrained(args.out, training=f"Initialisation only: {', '.join(parts)} from Whisper "
                                                   f"({source}; Whisper weights are MIT-licensed), the rest at init (seed {args.seed}); not trained.")
    print(f"wrote {out}: {', '.join(parts)} from {source}")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
