"""One battery over every family's tiny config (and the test-only toy family): the contract of
DESIGN.md. A family joins this test by being listed in zoo.registry.FAMILIES with a tiny_config."""

import math

import pytest
import torch

from zoo import registry
from zoo.api import Tokenizer, TokenizerOutput, Tokens


def _family_names():
    return list(registry.FAMILIES) + ["toy"]


@pytest.fixture(params=_family_names())
def tiny(request, toy_registry):
    spec = registry.family(request.param)
    if spec.tiny_config is None:
        pytest.fail(f"family {spec.name} has no tiny_config for the contract tests")
    torch.manual_seed(0)
    return spec.tokenizer(spec.tiny_config).eval()


def test_properties(tiny):
    assert isinstance(tiny, Tokenizer)
    assert tiny.modality in ("image", "audio", "3d")
    assert isinstance(tiny.codebook_size, int) and tiny.codebook_size > 1
    assert tiny.num_codebooks >= 1
    assert tiny.token_rate > 0 and math.isfinite(tiny.token_rate)


def test_encode_decode_shapes_ids_and_determinism(tiny):
    x, kw = tiny.example_input(2, torch.Generator().manual_seed(0))
    t = tiny.encode(x, **kw)
    assert isinstance(t, Tokens) and t.ids.dtype == torch.int64 and t.batch_size == 2
    assert t.meta.get("family") == tiny.family
    assert int(t.ids.min()) >= 0 and int(t.ids.max()) < tiny.codebook_size
    t2 = tiny.encode(x, **kw)
    assert torch.equal(t.ids, t2.ids), "encode must be deterministic in eval mode"
    y = tiny.decode(t)
    y = y if isinstance(y, torch.Tensor) else torch.stack(list(y))
    assert y.shape[0] == 2 and torch.isfinite(y).all()
    if tiny.modality in ("image", "audio"):
        assert y.shape[1:] == x.shape[1:] or kw.get("sample_rate") not in (None, getattr(tiny, "sample_rate", None))


def test_decode_rejects_out_of_range_ids(tiny):
    x, kw = tiny.example_input(1, torch.Generator().manual_seed(0))
    t = tiny.encode(x, **kw)
    bad = Tokens(torch.full_like(t.ids, tiny.codebook_size), layout=t.layout, lengths=t.lengths, meta=t.meta)
    with pytest.raises(ValueError, match="ids"):
        tiny.decode(bad)


def test_forward_gives_losses_and_no_nan(tiny):
    x, kw = tiny.example_input(2, torch.Generator().manual_seed(1))
    tiny.train()
    out = tiny(x)  # forward takes media at the model's own rate / size
    assert isinstance(out, TokenizerOutput)
    assert torch.isfinite(out.recon).all()
    for name, loss in out.losses.items():
        assert loss.dim() == 0 and torch.isfinite(loss), name


def test_save_load_round_trip(tiny, tmp_path):
    import zoo

    tiny.save_pretrained(tmp_path / "m")
    back = zoo.load(str(tmp_path / "m"))
    assert type(back) is type(tiny)
    for k, v in tiny.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    x, kw = tiny.example_input(1, torch.Generator().manual_seed(0))
    assert torch.equal(tiny.encode(x, **kw).ids, back.encode(x, **kw).ids)


def test_tokens_file_round_trip_decodes_the_same(tiny, tmp_path):
    x, kw = tiny.example_input(1, torch.Generator().manual_seed(0))
    t = tiny.encode(x, **kw)
    t.save(tmp_path / "a.tokens")
    u = Tokens.load(tmp_path / "a.tokens")
    def dec(tokens):  # stochastic decoders get the same seed both times
        kw = {"generator": torch.Generator().manual_seed(0)} if getattr(tiny, "stochastic_decoder", False) else {}
        y = tiny.decode(tokens, **kw)
        return y if isinstance(y, torch.Tensor) else torch.stack(list(y))

    assert torch.allclose(dec(t), dec(u))


def test_streaming_is_offered_or_refused_by_name(tiny):
    if tiny.family in ("wavtokenizer", "xy_tokenizer"):
        assert tiny.stream_encoder() is not None and tiny.stream_decoder() is not None
    else:
        with pytest.raises(NotImplementedError, match="WavTokenizer and XY-Tokenizer"):
            tiny.stream_encoder()


def test_a_family_missing_a_contract_property_gets_a_sentence_not_a_wrong_value():
    """The base class reads codebook_size / token_rate / example_input from the config or the quantizer; a family
    that has neither (and defines nothing) is told what to define, and a fixed-length family refuses num_tokens."""
    import dataclasses

    @dataclasses.dataclass
    class BareConfig:
        dim: int = 4

    class Bare(Tokenizer):
        family, modality, config_class = "bare", "audio", BareConfig

    bare = Bare(BareConfig())
    for what, call in [("codebook_size", lambda: bare.codebook_size), ("token_rate", lambda: bare.token_rate),
                       ("example_input", lambda: bare.example_input())]:
        with pytest.raises(NotImplementedError, match=f"Bare must define {what}"):
            call()
    with pytest.raises(NotImplementedError, match="fixed token count"):
        bare.check_num_tokens(3)
    assert bare.num_codebooks == 1
