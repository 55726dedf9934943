"""WavTokenizer's catalogue: the released variants with their weights' provenance, and the tiny configs."""

from __future__ import annotations

from zoo.registry import PretrainedCfg, Variant, embedded_variant, family_spec

from . import convert
from .model import LICENSE, PAPER, UPSTREAM, WavTokenizer, WavTokenizerConfig

CONFIG_40TPS = WavTokenizerConfig()
CONFIG_75TPS = WavTokenizerConfig(strides=(2, 4, 5, 8), n_fft=1280)
# Tiny: for tests, benchmarks and the embedded CPU-trained default (100 tokens/s).
TINY_CONFIG = WavTokenizerConfig(
    strides=(2, 4, 5, 6),
    encoder_filters=8,
    encoder_dim=64,
    codebook_size=1024,
    backbone_dim=64,
    backbone_intermediate_dim=192,
    backbone_layers=2,
    num_groups=16,
    n_fft=960,
    kmeans_iters=10,
)


def _official(name: str, cfg: WavTokenizerConfig, hub_id: str, filename: str, description: str,
              revision: str | None = None, sha256: str | None = None) -> Variant:
    pre = PretrainedCfg(hub_id=hub_id, filename=filename, revision=revision, sha256=sha256, license=LICENSE, paper=PAPER)
    return Variant(name=name, config=cfg, pretrained=pre, description=description)


def _medium(kind: str, about: str, v2_revision: str) -> tuple[Variant, Variant]:
    repo, stem = f"novateur/WavTokenizer-medium-{kind}-75token", f"wavtokenizer_medium_{kind.replace('-', '_')}_320_24k"
    return (
        _official(f"wavtokenizer-medium-{kind}-75tps", CONFIG_75TPS, repo, f"{stem}_v2.ckpt",
                  f"WavTokenizer medium (v2 checkpoint), 75 tokens/s, {about}.", revision=v2_revision),
        _official(f"wavtokenizer-medium-{kind}-75tps-v1", CONFIG_75TPS, repo, f"{stem}.ckpt",
                  f"WavTokenizer medium, first (v1) checkpoint, 75 tokens/s, {about}; its codes differ from v2's."),
    )


# Hub commits (and one file sha256) seen in public code that downloads these files; where none was
# seen the entry follows `main` and is listed in zoo.registry.NOT_YET_PINNED. Sources in NOTES.md.
_REV_MEDIUM_SPEECH = "8858552e69270816d6aeb37bfcf3b770769d4899"  # snapshot holding ..._speech_320_24k_v2.ckpt
_REV_MEDIUM_MUSIC = "1bcbe86db88fc1f1f86c7ea192e791b3ede17da2"  # snapshot holding ..._music_audio_320_24k_v2.ckpt
_REV_LARGE_UNIFY = "7dc47a9450ce71cab736434b7645604013ca028b"
_SHA_LARGE_UNIFY = "72182c1b6bd5ea7f84cf3ec78a0a3244cf42daa660b2e9bce23f5d74064d8205"  # its hub-cache blob name


VARIANTS = (
    _official("wavtokenizer-small-40tps", CONFIG_40TPS, "novateur/WavTokenizer", "WavTokenizer_small_600_24k_4096.ckpt",
              "WavTokenizer small, 40 tokens/s (hop 600), trained on LibriTTS (speech)."),
    _official("wavtokenizer-small-75tps", CONFIG_75TPS, "novateur/WavTokenizer", "WavTokenizer_small_320_24k_4096.ckpt",
              "WavTokenizer small, 75 tokens/s (hop 320), trained on LibriTTS (speech)."),
    # medium: v2 and the first (v1) release, beside each other in the same repos. Same architecture (downstream
    # code loads v1 strictly with the frame75 medium YAML), different weights: v1 and v2 codes are not
    # interchangeable, so a speech LM trained on v1 codes (Lina-Speech, YarnGPT) needs v1.
    *_medium("speech", "~10k hours of speech", _REV_MEDIUM_SPEECH),
    *_medium("music-audio", "music and general audio", _REV_MEDIUM_MUSIC),
    _official("wavtokenizer-large-unify-40tps", CONFIG_40TPS, "novateur/WavTokenizer-large-unify-40token",
              "wavtokenizer_large_unify_600_24k.ckpt",
              "WavTokenizer large, 40 tokens/s, ~80k hours of speech, music and audio.",
              revision=_REV_LARGE_UNIFY, sha256=_SHA_LARGE_UNIFY),
    _official("wavtokenizer-large-speech-75tps", CONFIG_75TPS, "novateur/WavTokenizer-large-speech-75token",
              "wavtokenizer_large_speech_320_v2.ckpt",
              "WavTokenizer large, 75 tokens/s, speech (the v2 checkpoint; v1 was withdrawn upstream)."),
    embedded_variant("wavtokenizer-tiny-24k", TINY_CONFIG, "wavtokenizer/tiny-24k",
                     "A tiny WavTokenizer (100 tokens/s, 1024 codes) trained here on CPU with recipes/wavtokenizer/tiny-cpu.yaml."),
)

FAMILY = family_spec("wavtokenizer", WavTokenizer, VARIANTS, convert, paper=PAPER, upstream=UPSTREAM, tiny_config=TINY_CONFIG,
                     description="24 kHz audio codec: SEANet encoder, one 4096-code VQ, Vocos decoder with an iSTFT head (40 or 75 tokens/s).")
