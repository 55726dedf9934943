"""XY-Tokenizer stage 1 through the training program (recipes/_smoke/xy_tokenizer_stage1.yaml):
the ASR-alignment adapter trains and is checkpointed and resumed, the LM and the semantic encoder
stay fixed, the semantic term alone reaches the encoder parts before the quantizer; the Whisper
initialisation script; the stage-1 recipe's settings."""

from __future__ import annotations

import json
import runpy
import types
from pathlib import Path

import pytest
import torch

import zoo
from zoo.tokenizers.xy_tokenizer import TINY_CONFIG, XYTokenizer
from zoo.tokenizers.xy_tokenizer.convert import whisper_encoder_state
from zoo.train.semantic_lm import CharLM, CharLMConfig

REPO = Path(__file__).resolve().parents[2]
PROGRAM = REPO / "training" / "train_autoencoder.py"
SMOKE = REPO / "recipes" / "_smoke" / "xy_tokenizer_stage1.yaml"
STAGE1 = REPO / "recipes" / "xy_tokenizer" / "stage1-16k.yaml"
ENCODER_PARTS = {"semantic_encoder_adapter", "acoustic_encoder", "pre_rvq_adapter", "downsample", "quantizer_in", "quantizer_out"}
DECODER_PARTS = {"post_rvq_adapter", "upsample", "acoustic_decoder", "vocos", "head"}

BUILT_LMS: list = []  # what `recording_char_lm` built, for the test to inspect after training


def recording_char_lm(path):
    """A `module:callable` LM plug-in (the user-code path): a CharLM from `path`, remembered."""
    lm = CharLM.load(path)
    BUILT_LMS.append(lm)
    return lm


def _recipe(path: Path, overrides=()):
    from zoo.train.recipe import read_recipe

    mod = types.SimpleNamespace(**runpy.run_path(str(PROGRAM), run_name="zoo_program_train_autoencoder"))
    return mod, read_recipe(mod.ProgramConfig, path, list(overrides), program="train_autoencoder")


def _clips(folder: Path, words=("ba", "be", "bi", "bo")) -> Path:
    """Short noisy tones named by their 'transcript' (text: filename)."""
    import soundfile as sf

    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for k, w in enumerate(words):
        t = torch.arange(8000) / 16000
        wav = 0.3 * torch.sin(2 * torch.pi * (200 + 100 * k) * t) + 0.02 * torch.randn(8000, generator=g)
        sf.write(folder / f"{w}.wav", wav.numpy(), 16000)
    return folder


def _initial_model(cfg) -> XYTokenizer:
    from zoo.train.distributed import seed_all
    from zoo.train.recipe import build_tokenizer

    seed_all(cfg.train.seed)  # as main() does before building
    return build_tokenizer(cfg.model)


def _changed_parts(before: dict, after: dict) -> set[str]:
    return {k.split(".")[0] for k in before if before[k].is_floating_point() and not torch.equal(before[k], after[k])}


def _ckpt(run: Path, step: int) -> dict:
    return torch.load(run / "checkpoints" / f"step_{step:08d}.pt", map_location="cpu", weights_only=True)


# 2 + 1 + 3 steps of the test config with a 2-layer CharLM
def test_stage1_trains_and_resumes_the_adapter_and_keeps_lm_and_semantic_encoder_fixed(tmp_path):
    data = _clips(tmp_path / "clips")
    torch.manual_seed(1)
    lm_file = CharLM(CharLMConfig(width=32, layers=2, heads=2, max_len=64)).save(tmp_path / "lm.safetensors")
    common = [f"data.paths=[{data}]", f"loss.semantic.lm=tests.tokenizers.test_xy_tokenizer_stage1:recording_char_lm",
              f"loss.semantic.lm_path={lm_file}", "train.ckpt_every=1", "train.keep_checkpoints=5"]
    BUILT_LMS.clear()
    mod, cfg = _recipe(SMOKE, common + [f"train.run_dir={tmp_path / 'a'}"])
    final = zoo.load(mod.main(cfg, env={}))

    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert all("semantic" in r and torch.isfinite(torch.tensor(r["semantic"])) for r in rows)
    first, second = _ckpt(tmp_path / "a", 1)["models"]["semantic"], _ckpt(tmp_path / "a", 2)["models"]["semantic"]
    assert first.keys() == {"adapter.0.weight", "adapter.0.bias", "adapter.2.weight", "adapter.2.bias"}  # no LM inside
    assert all(not torch.equal(first[k], second[k]) for k in first), "the adapter did not train"

    (lm,) = BUILT_LMS
    assert not lm.training and not any(p.requires_grad for p in lm.parameters())
    saved = CharLM.load(lm_file).state_dict()
    assert all(torch.equal(v, saved[k]) for k, v in lm.state_dict().items()), "the frozen LM changed"

    before, after = _initial_model(cfg).state_dict(), final.state_dict()
    changed = _changed_parts(before, after)
    assert "semantic_encoder" not in changed
    assert ENCODER_PARTS | DECODER_PARTS <= changed

    # resume from step 2 to 3 == an uninterrupted 3-step run (the adapter and its optimiser restored)
    mod, cfg = _recipe(SMOKE, common + [f"train.run_dir={tmp_path / 'a'}", "train.steps=3"])
    mod.main(cfg, env={})
    mod, cfg = _recipe(SMOKE, common + [f"train.run_dir={tmp_path / 'c'}", "train.steps=3"])
    mod.main(cfg, env={})
    resumed, straight = _ckpt(tmp_path / "a", 3)["models"], _ckpt(tmp_path / "c", 3)["models"]
    for name in ("semantic", "model"):
        for k, v in straight[name].items():
            assert torch.allclose(resumed[name][k].float(), v.float(), atol=1e-6), f"{name}.{k} differs after resume"
    assert not torch.equal(resumed["semantic"]["adapter.0.weight"], second["adapter.0.weight"])


def test_the_semantic_term_alone_trains_the_encoder_side_only(tmp_path):
    data = _clips(tmp_path / "clips")
    stage = "[{name: asr_only, from_step: 0, weights: {mel: 0.0, quantizer: 0.0, semantic: 1.0}}]"
    mod, cfg = _recipe(SMOKE, [f"data.paths=[{data}]", f"train.run_dir={tmp_path / 'run'}", f"loss.stages={stage}"])
    final = zoo.load(mod.main(cfg, env={}))
    changed = _changed_parts(_initial_model(cfg).state_dict(), final.state_dict()) - {"rvq"}  # k-means init moves codebooks
    assert changed == ENCODER_PARTS  # the semantic encoder is frozen; the decoder gets no gradient from this term


def test_semantic_weight_needs_features_transcripts_and_a_named_lm(tmp_path):
    stage = "[{name: s, from_step: 0, weights: {l1: 1.0, semantic: 1.0}}]"
    mod, cfg = _recipe(REPO / "recipes" / "_smoke" / "wavtokenizer.yaml",
                       [f"train.run_dir={tmp_path / 'w'}", f"loss.stages={stage}", "loss.semantic.lm=char_lm", "data.text=filename"])
    with pytest.raises(ValueError, match="gives no quantized features"):
        mod.main(cfg, env={})
    mod, cfg = _recipe(SMOKE, [f"train.run_dir={tmp_path / 'x'}", "data.text=none"])
    with pytest.raises(ValueError, match="needs transcripts: set data.text"):
        mod.main(cfg, env={})
    mod, cfg = _recipe(SMOKE, [f"train.run_dir={tmp_path / 'y'}", "loss.semantic.lm=null"])
    with pytest.raises(ValueError, match="loss.semantic.lm is not set"):
        mod.main(cfg, env={})
    mod, cfg = _recipe(SMOKE, [f"train.run_dir={tmp_path / 'z'}", "loss.semantic.lm=gpt9"])
    with pytest.raises(ValueError, match=r"Unknown language model 'gpt9'.*char_lm.*hf_causal_lm"):
        mod.main(cfg, env={})


def test_stage1_recipe_is_the_complete_stage():
    _, cfg = _recipe(STAGE1)
    (stage,) = cfg.loss.stages
    assert stage.weights.mel > 0 and stage.weights.quantizer > 0 and stage.weights.semantic > 0
    assert stage.weights.adversarial == 0  # no discriminator in stage 1
    assert cfg.loss.semantic.lm == "hf_causal_lm" and cfg.data.text == "sidecar"
    assert cfg.model.freeze == ("semantic_encoder",) and cfg.model.init_from
    assert "INCOMPLETE" not in STAGE1.read_text()


# -- Whisper initialisation --------------------------------------------------------------------
def _whisper_layout(model: XYTokenizer, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Random tensors under transformers' WhisperForConditionalGeneration encoder names, with the
    shapes of `model`'s semantic encoder, plus decoder keys that the script must ignore."""
    out = {}
    for k, v in model.semantic_encoder.state_dict().items():
        name = "embed_positions.weight" if k == "positional_embedding" else k
        out[f"model.encoder.{name}"] = torch.randn(v.shape, generator=g)
    out["model.decoder.layers.0.fc1.weight"] = torch.randn(4, 4, generator=g)
    out["proj_out.weight"] = torch.randn(4, 4, generator=g)
    return out


def test_whisper_init_fills_the_semantic_encoder_and_leaves_the_rest_at_init(tmp_path):
    from safetensors.torch import save_file

    from zoo.train.recipe import ModelConfig, build_tokenizer

    script = types.SimpleNamespace(**runpy.run_path(str(REPO / "training" / "xy_whisper_init.py"), run_name="xy_whisper_init"))
    whisper = _whisper_layout(XYTokenizer(TINY_CONFIG), torch.Generator().manual_seed(0))
    assert "model.encoder.layers.0.self_attn.k_proj.weight" in whisper and "model.encoder.layers.0.self_attn.k_proj.bias" not in whisper
    (tmp_path / "whisper").mkdir()
    save_file(whisper, tmp_path / "whisper" / "model.safetensors")
    (tmp_path / "tiny.json").write_text(json.dumps(zoo.api.config_to_dict(TINY_CONFIG)))

    out = script.main(["--whisper", str(tmp_path / "whisper"), "--config", str(tmp_path / "tiny.json"), "--out", str(tmp_path / "init")])
    model = build_tokenizer(ModelConfig(init_from=str(out), freeze=("semantic_encoder",)))  # usable as init_from
    assert model.cfg == TINY_CONFIG
    sd = model.state_dict()
    for k, v in whisper.items():
        if k.startswith("model.encoder."):
            ours = "semantic_encoder." + k.removeprefix("model.encoder.").replace("embed_positions.weight", "positional_embedding")
            assert torch.equal(sd[ours], v), ours
    torch.manual_seed(0)
    fresh = XYTokenizer(TINY_CONFIG).state_dict()
    assert all(torch.equal(v, fresh[k]) for k, v in sd.items() if not k.startswith("semantic_encoder."))

    both = script.main(["--whisper", str(tmp_path / "whisper" / "model.safetensors"), "--config", str(tmp_path / "tiny.json"),
                        "--out", str(tmp_path / "both"), "--acoustic"])
    assert torch.equal(zoo.load(both).acoustic_encoder.conv1.weight, whisper["model.encoder.conv1.weight"])

    del whisper["model.encoder.layers.0.fc1.weight"]
    save_file(whisper, tmp_path / "broken.safetensors")
    with pytest.raises(ValueError, match=r"(?s)Whisper encoder of .*broken.* does not match XYTokenizer \(its semantic_encoder\.\*\)"
                                         r".*missing keys \(1\):\s+semantic_encoder\.layers\.0\.fc1\.weight\n"):
        script.main(["--whisper", str(tmp_path / "broken.safetensors"), "--config", str(tmp_path / "tiny.json"), "--out", str(tmp_path / "x")])
    with pytest.raises(ValueError, match="No Whisper encoder weights"):
        whisper_encoder_state({"decoder.x": torch.zeros(1)})
