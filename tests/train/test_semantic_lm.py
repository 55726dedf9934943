"""Transcripts in the audio data (data.text), the pluggable frozen LM and the ASR-alignment loss
(zoo/train/semantic_lm.py)."""

from __future__ import annotations

import io
import sys
import tarfile

import pytest
import torch
from torch.utils.data import default_collate

from zoo.train.data import DataConfig, build_dataset
from zoo.train.semantic_lm import ASRAlignment, CharLM, CharLMConfig, build_lm


# -- transcripts -------------------------------------------------------------------------------
def _wav_bytes(seconds: float = 0.25) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, (0.3 * torch.sin(torch.arange(int(16000 * seconds)) / 7.0)).numpy(), 16000, format="WAV")
    return buf.getvalue()


def _audio_cfg(path, **kw) -> DataConfig:
    return DataConfig(kind="audio_folder", paths=(str(path),), sample_rate=16000, segment_seconds=0.25, **kw)


def test_audio_folder_gives_sidecar_or_filename_transcripts_batched_as_strings(tmp_path):
    for stem, text in (("car", "a red car\n"), ("dog", "dog")):
        (tmp_path / f"{stem}.wav").write_bytes(_wav_bytes())
        (tmp_path / f"{stem}.txt").write_text(text, encoding="utf-8")
    ds = build_dataset(_audio_cfg(tmp_path, text="sidecar"))
    wav, text = ds[(0, 0)]
    assert wav.shape == (1, 4000) and text == "a red car"
    batch = default_collate([ds[(0, 0)], ds[(1, 0)]])
    assert batch[0].shape == (2, 1, 4000) and list(batch[1]) == ["a red car", "dog"]
    assert build_dataset(_audio_cfg(tmp_path, text="filename"))[(1, 0)][1] == "dog"
    assert isinstance(build_dataset(_audio_cfg(tmp_path))[(0, 0)], torch.Tensor)  # text: none, as before


def test_missing_transcripts_stop_or_are_left_out(tmp_path):
    (tmp_path / "car.wav").write_bytes(_wav_bytes())
    (tmp_path / "car.txt").write_text("car")
    (tmp_path / "dog.wav").write_bytes(_wav_bytes())
    with pytest.raises(ValueError, match=r"1 of 2 audio files have no transcript.*dog\.wav.*on_error: skip"):
        build_dataset(_audio_cfg(tmp_path, text="sidecar"))
    ds = build_dataset(_audio_cfg(tmp_path, text="sidecar", on_error="skip"))
    assert len(ds) == 1 and ds[(0, 0)][1] == "car"
    (tmp_path / "car.txt").unlink()
    with pytest.raises(ValueError, match="No audio file .* has a transcript"):
        build_dataset(_audio_cfg(tmp_path, text="sidecar", on_error="skip"))
    with pytest.raises(ValueError, match="data.text must be one of"):
        build_dataset(_audio_cfg(tmp_path, text="srt"))
    with pytest.raises(ValueError, match="transcripts for audio only"):
        build_dataset(DataConfig(kind="image_folder", paths=(str(tmp_path),), text="filename"))


def test_tar_shards_read_the_txt_member_of_the_same_key(tmp_path):
    shard = tmp_path / "shard-000.tar"
    members = [("d/000.wav", _wav_bytes()), ("d/000.txt", "hello world".encode()),
               ("d/001.wav", _wav_bytes()), ("d/001.txt", "ça va".encode())]
    with tarfile.open(shard, "w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    cfg = DataConfig(kind="tar_shards", modality="audio", paths=(str(shard),), sample_rate=16000, segment_seconds=0.25)
    ds = build_dataset(DataConfig(**{**cfg.__dict__, "text": "sidecar"}))
    assert [ds[(i, 0)][1] for i in range(2)] == ["hello world", "ça va"]
    assert build_dataset(DataConfig(**{**cfg.__dict__, "text": "filename"}))[(1, 0)][1] == "001"
    with tarfile.open(shard, "a") as tf:  # an audio member without its .txt
        info = tarfile.TarInfo("d/002.wav")
        data = _wav_bytes()
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with pytest.raises(ValueError, match=r"no transcript.*d/002\.wav"):
        build_dataset(DataConfig(**{**cfg.__dict__, "text": "sidecar"}))


# -- the LM registry ---------------------------------------------------------------------------
def _plugin_without_embed(path):
    class Half:
        width, bos_id, eos_id = 8, 0, None

        def tokenize(self, text):
            return [1]

    return Half()


def test_lm_builders_by_name_and_clear_errors(tmp_path, monkeypatch):
    lm = build_lm("char_lm")
    assert isinstance(lm, CharLM) and not lm.training and not any(p.requires_grad for p in lm.parameters())
    again = build_lm("char_lm")  # the fixed random LM: the same every time (a resume rebuilds it)
    assert all(torch.equal(a, b) for a, b in zip(lm.parameters(), again.parameters()))
    saved = CharLM(CharLMConfig(width=16, layers=1, heads=2, max_len=32)).save(tmp_path / "lm.safetensors")
    loaded = build_lm("char_lm", str(saved))
    assert loaded.cfg.width == 16 and loaded.width == 16

    with pytest.raises(ValueError, match=r"Unknown language model 'qwen'.*\['char_lm', 'hf_causal_lm'\].*module:callable"):
        build_lm("qwen")
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed (it is an optional extra)
    with pytest.raises(ImportError, match="pip install transformers"):
        build_lm("hf_causal_lm", "Qwen/Qwen2.5-0.5B")
    with pytest.raises(ValueError, match="needs loss.semantic.lm_path"):
        build_lm("hf_causal_lm")
    with pytest.raises(ValueError, match="could not import 'nope'"):
        build_lm("zoo.train.semantic_lm:nope")
    with pytest.raises(TypeError, match=r"lacks \['embed', 'forward'\]"):
        build_lm(f"{__name__}:_plugin_without_embed")
    with pytest.raises(ValueError, match="not a CharLM file"):
        from safetensors.torch import save_file

        save_file({"w": torch.zeros(1)}, tmp_path / "other.safetensors")
        build_lm("char_lm", str(tmp_path / "other.safetensors"))


# -- the loss ----------------------------------------------------------------------------------
def _lm() -> CharLM:
    torch.manual_seed(0)
    return CharLM(CharLMConfig(width=32, layers=2, heads=2, max_len=64)).eval().requires_grad_(False)


def test_loss_masks_padding_and_scores_only_the_transcript():
    lm = _lm()
    torch.manual_seed(1)
    align = ASRAlignment(12, lm.width, layers=2, prefix_ids=[lm.bos_id, *lm.tokenize("say:")])
    feats = torch.randn(2, 12, 6)
    lengths = torch.tensor([3, 6])  # item 0: 3 valid frames, the rest padding
    batch = align(feats, lengths, ["ab", "hello"], lm)
    alone0 = align(feats[:1, :, :3], None, ["ab"], lm)
    alone1 = align(feats[1:], None, ["hello"], lm)
    # a token-weighted mean over the transcript + EOS tokens: 3 of item 0, 6 of item 1 (the prompt is not scored)
    assert torch.allclose(batch, (3 * alone0 + 6 * alone1) / 9, atol=1e-5)
    garbage = feats.clone()
    garbage[0, :, 3:] = 100.0
    assert torch.allclose(align(garbage, lengths, ["ab", "hello"], lm), batch, atol=1e-5)
    with pytest.raises(ValueError, match="2 transcripts for a batch of 1"):
        align(feats[:1], None, ["a", "b"], lm)
    with pytest.raises(ValueError, match="64 positions"):
        align(torch.randn(1, 12, 60), None, ["a long transcript"], lm)


class LookAheadLM(torch.nn.Module):
    """A cheating LM: one-hot embeddings, and the logits at position p are the embedding at p + 1.
    It predicts every scored token perfectly exactly when the loss reads the right positions."""

    width, bos_id, eos_id = 258, 256, 257

    def tokenize(self, text):
        return list(text.encode("utf-8"))

    def embed(self, ids):
        return 30.0 * torch.nn.functional.one_hot(ids, self.width).float()

    def forward(self, inputs_embeds, attention_mask):
        return inputs_embeds.roll(-1, dims=1)


def test_a_perfect_predictor_gives_zero_loss_so_targets_and_positions_line_up():
    lm = LookAheadLM()
    align = ASRAlignment(12, lm.width, layers=1, prefix_ids=[lm.bos_id, *lm.tokenize("go")])
    loss = align(torch.randn(3, 12, 7), torch.tensor([7, 2, 5]), ["hello", "", "ça"], lm)
    assert loss.item() < 1e-6
    lm.forward = lambda e, m: e  # off by one: predicts the current token
    assert align(torch.randn(3, 12, 7), torch.tensor([7, 2, 5]), ["hello", "", "ça"], lm).item() > 5


def test_adapter_learns_to_steer_the_frozen_lm_towards_the_transcript():
    lm = _lm()  # random and frozen: hard to steer, so the bar is a clear decrease, not a fit
    torch.manual_seed(2)
    align = ASRAlignment(12, lm.width, layers=2, prefix_ids=[lm.bos_id])
    feats, texts = torch.randn(2, 12, 5), ["ba", "do"]
    opt = torch.optim.Adam(align.parameters(), lr=0.1)
    losses = []
    for _ in range(20):
        loss = align(feats, None, texts, lm)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.4 and losses[-1] < min(losses[:10]), losses
    assert all(p.grad is None for p in lm.parameters())  # frozen: no gradient reaches the LM's weights
