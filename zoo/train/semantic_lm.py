"""ASR alignment of quantized speech features through a frozen language model, with the model pluggable.

XY-Tokenizer's stage 1 (Gong et al., arXiv 2506.23325; github.com/gyt1145028706/XY-Tokenizer,
Apache-2.0, whose training code is unreleased) trains the codec with reconstruction, commitment and an
ASR loss: the quantized 12.5 Hz features pass a trainable adapter into the embedding space of a frozen
causal LM (Qwen2.5 in the paper), which predicts the transcript. The paper gives no adapter layout,
prompt or LM size; ours (written from that description, nothing copied):

    features [B, D, T] -> adapter: Linear D -> W, then (GELU, Linear W -> W) x (layers - 1)  -> [B, T, W]
    item i, packed to the left and right-padded:  [audio_i: lengths[i] frames] [BOS] [prompt] [text_i] [EOS]
    loss: next-token cross-entropy on text_i and EOS only (mean over those tokens of the batch)

The LM is any object with (`LanguageModel`):

    width: int                                       embedding width W
    bos_id: int; eos_id: int | None                  placed before the prompt / after the transcript
    tokenize(text: str) -> list[int]                 no special tokens added
    embed(ids [B, N] long) -> [B, N, W]
    forward(inputs_embeds [B, N, W], attention_mask [B, N] bool) -> logits [B, N, vocab]

`build_lm(name, path)` picks a builder by name: `hf_causal_lm` (transformers AutoModelForCausalLM +
AutoTokenizer, an optional extra), `char_lm` (a small causal transformer over UTF-8 bytes, built here,
for tests and CPU runs), or `module:callable`: your own code, imported from the Python path and called
as `callable(path)`, returning an object as above. That is code you run on purpose, never something a
checkpoint names. The LM is frozen (eval mode, no gradients) and kept out of `ASRAlignment`, so
training checkpoints hold the adapter only.
"""

from __future__ import annotations

import importlib
import json
import types
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PROTOCOL = ("width", "bos_id", "eos_id", "tokenize", "embed", "forward")


class LanguageModel(Protocol):
    width: int
    bos_id: int
    eos_id: int | None

    def tokenize(self, text: str) -> list[int]: ...

    def embed(self, ids: Tensor) -> Tensor: ...

    def forward(self, inputs_embeds: Tensor, attention_mask: Tensor) -> Tensor: ...


# ----------------------------------------------------------------------------------------------
# char_lm: a small causal transformer over bytes
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CharLMConfig:
    width: int = 64
    layers: int = 2
    heads: int = 4
    max_len: int = 512  # positions: audio frames + BOS + prompt + transcript + EOS


class CharLM(nn.Module):
    """Causal transformer over UTF-8 bytes: ids 0..255 are bytes, 256 is BOS, 257 EOS.
    Pre-LN layers, learned positions, untied output head."""

    vocab_size, bos_id, eos_id = 258, 256, 257

    def __init__(self, cfg: CharLMConfig = CharLMConfig()):
        super().__init__()
        self.cfg, self.width = cfg, cfg.width
        self.tokens = nn.Embedding(self.vocab_size, cfg.width)
        self.positions = nn.Embedding(cfg.max_len, cfg.width)
        layer = nn.TransformerEncoderLayer(cfg.width, cfg.heads, 4 * cfg.width, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, self.vocab_size, bias=False)

    def tokenize(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def embed(self, ids: Tensor) -> Tensor:
        return self.tokens(ids)

    def forward(self, inputs_embeds: Tensor, attention_mask: Tensor) -> Tensor:
        b, n, _ = inputs_embeds.shape
        if n > self.cfg.max_len:
            raise ValueError(f"CharLM has {self.cfg.max_len} positions; got a sequence of {n} (audio frames + text). "
                             "Use shorter segments or transcripts, or a CharLM with a larger max_len.")
        x = inputs_embeds + self.positions.weight[:n]
        causal = torch.ones(n, n, dtype=torch.bool, device=x.device).triu(1)  # True: may not attend
        x = self.layers(x, mask=causal, src_key_padding_mask=~attention_mask.bool(), is_causal=True)
        return self.head(self.norm(x))  # [B, N, vocab]

    def save(self, path: str | Path) -> Path:
        """Weights + config in one safetensors file (config in the header), for `lm_path`."""
        from safetensors.torch import save_file

        from zoo.io import atomic_write

        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        return atomic_write(path, lambda tmp: save_file(state, tmp, metadata={"zoo_char_lm": json.dumps(asdict(self.cfg))}))

    @classmethod
    def load(cls, path: str | Path) -> "CharLM":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if "zoo_char_lm" not in meta:
                raise ValueError(f"{path} is not a CharLM file written by CharLM.save (no zoo_char_lm config in its header).")
            state = {k: f.get_tensor(k) for k in f.keys()}
        lm = cls(CharLMConfig(**json.loads(meta["zoo_char_lm"])))
        lm.load_state_dict(state, strict=True)
        return lm


def build_char_lm(path: str | None) -> CharLM:
    """From a CharLM.save file, or (no path) a fixed random CharLM: seed 0 on a private RNG, so a
    resumed run rebuilds the same LM and the program's random stream is not touched."""
    if path:
        return CharLM.load(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return CharLM()


# ----------------------------------------------------------------------------------------------
# hf_causal_lm: a transformers causal LM (Qwen2.5 in the paper)
# ----------------------------------------------------------------------------------------------
class HFCausalLM(nn.Module):
    """A transformers causal LM and its tokenizer behind the protocol. BOS: the tokenizer's
    bos_token, or its eos_token when it has none (Qwen2.5: `<|endoftext|>`)."""

    def __init__(self, model: nn.Module, tokenizer):
        super().__init__()
        self.model, self.tokenizer = model, tokenizer
        self.width = model.get_input_embeddings().embedding_dim
        self.eos_id = tokenizer.eos_token_id
        self.bos_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if self.bos_id is None:
            raise ValueError("The LM's tokenizer has neither a BOS nor an EOS token to separate the audio from the text.")

    def tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def embed(self, ids: Tensor) -> Tensor:
        return self.model.get_input_embeddings()(ids)

    def forward(self, inputs_embeds: Tensor, attention_mask: Tensor) -> Tensor:
        return self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask.long(), use_cache=False).logits


def build_hf_causal_lm(path: str | None) -> HFCausalLM:
    """transformers AutoModelForCausalLM + AutoTokenizer from a local folder or hub id; safetensors
    weights only, no remote code."""
    if not path:
        raise ValueError("lm: hf_causal_lm needs loss.semantic.lm_path: a local folder or hub id of a causal LM "
                         "(e.g. Qwen/Qwen2.5-0.5B).")
    try:
        import transformers
    except ImportError as e:
        raise ImportError("lm: hf_causal_lm needs the transformers package, an optional extra: "
                          "pip install transformers (the zoo extra [lm]), or choose lm: char_lm.") from e
    model = transformers.AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, trust_remote_code=False)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    return HFCausalLM(model, tokenizer)


LM_BUILDERS = types.MappingProxyType({"hf_causal_lm": build_hf_causal_lm, "char_lm": build_char_lm})


def build_lm(name: str, path: str | None = None, device: torch.device | str = "cpu") -> LanguageModel:
    """A frozen LM by builder name or `module:callable` (see the module docstring), on `device`."""
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"loss.semantic.lm {name!r}: could not import {attr!r} from module {module!r} ({e}).") from e
        lm = fn(path)
    elif name in LM_BUILDERS:
        lm = LM_BUILDERS[name](path)
    else:
        raise ValueError(f"Unknown language model {name!r} for loss.semantic.lm; known: {sorted(LM_BUILDERS)}, "
                         "or 'module:callable' naming your own code that returns an object with "
                         f"{', '.join(PROTOCOL)}.")
    missing = [a for a in PROTOCOL if not hasattr(lm, a)]
    if missing:
        raise TypeError(f"The language model from {name!r} ({type(lm).__name__}) lacks {missing}; "
                        f"the protocol is {', '.join(PROTOCOL)} (zoo.train.semantic_lm).")
    if isinstance(lm, nn.Module):
        lm = lm.to(device).eval().requires_grad_(False)
    return lm


# ----------------------------------------------------------------------------------------------
# the loss
# ----------------------------------------------------------------------------------------------
class ASRAlignment(nn.Module):
    """Trainable adapter + ASR cross-entropy through a frozen LM given at call time.

    prefix_ids: the ids between the audio and the transcript ([BOS] + prompt; at least one, which
    predicts the first transcript token). forward(features [B, D, T], lengths [B] or None, texts [B],
    lm) -> scalar loss.
    """

    def __init__(self, feature_dim: int, lm_width: int, layers: int = 2, prefix_ids: Sequence[int] = ()):
        super().__init__()
        if layers < 1:
            raise ValueError(f"loss.semantic.adapter_layers must be at least 1; got {layers}.")
        if not prefix_ids:
            raise ValueError("ASRAlignment needs at least one prefix id (BOS) before the transcript.")
        blocks: list[nn.Module] = [nn.Linear(feature_dim, lm_width)]
        for _ in range(layers - 1):
            blocks += [nn.GELU(), nn.Linear(lm_width, lm_width)]
        self.adapter = nn.Sequential(*blocks)
        self.prefix_ids = list(prefix_ids)

    def forward(self, features: Tensor, lengths: Tensor | None, texts: Sequence[str], lm: LanguageModel) -> Tensor:
        b, _, t = features.shape
        if len(texts) != b:
            raise ValueError(f"ASRAlignment got {len(texts)} transcripts for a batch of {b} feature sequences.")
        dev = features.device
        audio = self.adapter(features.transpose(1, 2))  # [B, T, W]
        a = torch.full((b,), t, device=dev) if lengths is None else lengths.to(dev).long()  # audio frames per item
        eos = [] if lm.eos_id is None else [lm.eos_id]
        seqs = [self.prefix_ids + lm.tokenize(s) + eos for s in texts]
        m = torch.tensor([len(s) for s in seqs], device=dev)  # text ids per item
        ids = torch.zeros(b, int(m.max()), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        ids = ids.to(dev)  # [B, M]
        text = lm.embed(ids).to(audio.dtype)  # [B, M, W]

        # item i: audio at 0 .. a_i - 1, text id j at a_i + j; right-padded to L
        n = int(max(t, int((a + m).max())))
        j = torch.arange(ids.shape[1], device=dev)
        has_text = j[None, :] < m[:, None]  # [B, M]
        pos = a[:, None] + j[None, :]  # [B, M]
        rows = torch.arange(b, device=dev)[:, None].expand_as(pos)
        x = F.pad(audio * (torch.arange(t, device=dev)[None, :] < a[:, None])[..., None], (0, 0, 0, n - t))  # [B, L, W]
        x = x.index_put((rows[has_text], pos[has_text]), text[has_text])
        logits = lm.forward(x, torch.arange(n, device=dev)[None, :] < (a + m)[:, None])  # [B, L, V]

        # the id at text position j (past the prefix) is predicted from position a_i + j - 1
        p = len(self.prefix_ids)
        src = (pos[:, p:] - 1).clamp(max=n - 1)  # [B, M - P]
        pred = logits[rows[:, p:], src]  # [B, M - P, V]
        scored = has_text[:, p:]
        return F.cross_entropy(pred[scored].float(), ids[:, p:][scored])
