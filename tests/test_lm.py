"""zoo.lm: flat and delay patterns over a shared vocabulary, exact inverses back to Tokens."""

import dataclasses

import pytest
import torch

from zoo.api import Tokens
from zoo.lm import deinterleave, delay, from_lm, interleave, to_lm, undelay


def _rvq(b=3, q=4, t=7, k=16, lengths=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, k, (b, q, t), generator=g)
    if lengths is not None:
        for i, n in enumerate(lengths):
            ids[i, :, n:] = 0  # the Tokens convention beyond an item's end
    return Tokens(ids=ids, layout="rvq", lengths=lengths, meta={"family": "toy", "num_samples": [1, 2, 3][:b]})


def _same(a: Tokens, b: Tokens):
    assert a.layout == b.layout and a.meta == b.meta and torch.equal(a.ids, b.ids)
    assert (a.lengths is None) == (b.lengths is None)
    if a.lengths is not None:
        assert torch.equal(a.lengths, b.lengths)


def test_flat_layout_and_offsets():
    tokens = _rvq(b=1, q=3, t=2, k=10)
    lm = to_lm(tokens, 10, pattern="flat", offset=100)
    c = tokens.ids[0]
    expect = [100 + c[0, 0], 110 + c[1, 0], 120 + c[2, 0], 100 + c[0, 1], 110 + c[1, 1], 120 + c[2, 1]]
    assert lm.ids[0].tolist() == [int(v) for v in expect]
    assert lm.pad_id == 130 and lm.vocab_size == 131


def test_delay_layout():
    tokens = _rvq(b=1, q=3, t=4, k=10)
    lm = to_lm(tokens, 10, pattern="delay")
    assert lm.ids.shape == (1, 3, 6) and lm.pad_id == 30
    c = tokens.ids[0]
    assert lm.ids[0, 0].tolist() == [int(v) for v in c[0]] + [30, 30]
    assert lm.ids[0, 1].tolist() == [30] + [10 + int(v) for v in c[1]] + [30]
    assert lm.ids[0, 2].tolist() == [30, 30] + [20 + int(v) for v in c[2]]


@pytest.mark.parametrize("pattern", ["flat", "delay"])
@pytest.mark.parametrize("lengths", [None, [7, 3, 1]])
def test_round_trip_rvq(pattern, lengths):
    tokens = _rvq(lengths=lengths)
    lm = to_lm(tokens, 16, pattern=pattern, offset=32000)
    assert int(lm.ids.min()) >= 32000 and int(lm.ids.max()) < lm.vocab_size
    _same(from_lm(lm), tokens)
    if lengths is not None:  # nothing beyond an item's end but pad
        q = 4
        for i, n in enumerate(lm.lengths.tolist()):
            rest = lm.ids[i, n:] if pattern == "flat" else lm.ids[i, :, n:]
            assert bool((rest == lm.pad_id).all())
        assert lm.lengths.tolist() == ([n * q for n in lengths] if pattern == "flat" else [n + q - 1 for n in lengths])


@pytest.mark.parametrize("pattern", ["flat", "delay"])
@pytest.mark.parametrize(
    "tokens",
    [Tokens(ids=torch.tensor([[3, 1, 4, 1, 5], [9, 2, 6, 0, 0]]), layout="1d", lengths=[5, 3]),
     Tokens(ids=torch.randint(0, 8, (2, 3, 4)), layout="2d"),
     Tokens(ids=torch.randint(0, 8, (2, 2, 3, 4)), layout="2d")],
    ids=["1d", "2d", "2d-groups"],
)
def test_round_trip_other_layouts(pattern, tokens):
    _same(from_lm(to_lm(tokens, 10, pattern=pattern, offset=5)), tokens)


def test_tensor_helpers_are_inverses():
    c = torch.randint(0, 50, (2, 5, 9))
    assert torch.equal(deinterleave(interleave(c), 5), c)
    assert torch.equal(undelay(delay(c, -1)), c)


def test_generated_ids_come_back():
    tokens = _rvq(lengths=None)
    lm = to_lm(tokens, 16, pattern="delay", offset=7)
    gen = dataclasses.replace(lm, ids=lm.ids.clone())
    _same(from_lm(gen), tokens)


def test_bad_ids_are_named():
    tokens = _rvq()
    with pytest.raises(ValueError, match="outside a codebook of 8"):
        to_lm(Tokens(ids=torch.full((1, 2, 3), 9), layout="rvq"), 8)
    with pytest.raises(ValueError, match="pattern must be one of"):
        to_lm(tokens, 16, pattern="zigzag")
    with pytest.raises(ValueError, match="inside the code range"):
        to_lm(tokens, 16, pad_id=5)
    lm = to_lm(tokens, 16, pattern="flat")
    wrong = lm.ids.clone()
    wrong[1, 5] = 0  # position 5 is codebook 1, whose ids are [16, 32)
    with pytest.raises(ValueError, match="item 1, codebook 1, frame 1 is not a code of codebook 1"):
        from_lm(dataclasses.replace(lm, ids=wrong))
    with pytest.raises(ValueError, match="whole number of frames"):
        from_lm(dataclasses.replace(lm, ids=lm.ids[:, :-1]))


def test_reversed_order_1d_within_lengths():
    tokens = Tokens(ids=torch.tensor([[3, 1, 4, 1, 5], [9, 2, 6, 0, 0]]), layout="1d", lengths=[5, 3])
    lm = to_lm(tokens, 10, order="reversed", offset=100)
    assert lm.order == "reversed" and lm.pad_id == 110
    assert lm.ids.tolist() == [[105, 101, 104, 101, 103], [106, 102, 109, 110, 110]]  # pads stay at the end
    _same(from_lm(lm), tokens)


@pytest.mark.parametrize("pattern", ["flat", "delay"])
@pytest.mark.parametrize("lengths", [None, [7, 3, 1]])
def test_reversed_order_round_trip_rvq(pattern, lengths):
    tokens = _rvq(lengths=lengths)
    fwd = to_lm(tokens, 16, pattern=pattern, offset=7)
    rev = to_lm(tokens, 16, pattern=pattern, offset=7, order="reversed")
    _same(from_lm(rev), tokens)
    if lengths is None:  # reversing the frames commutes with the flat pattern's frame blocks
        ref = to_lm(Tokens(ids=tokens.ids.flip(-1), layout="rvq", meta=tokens.meta), 16, pattern=pattern, offset=7)
        assert torch.equal(rev.ids, ref.ids)
    assert torch.equal(rev.lengths, fwd.lengths) if lengths is not None else rev.lengths is None


def test_reversed_order_selftok_coarse_first():
    """Selftok's last token (visible only at high noise) comes first; a generated sequence in that
    order comes back in the tokenizer's order."""
    ids = torch.arange(16)[None].repeat(2, 1)  # [B, K] token k has id k
    tokens = Tokens(ids=ids, layout="1d", meta={"family": "selftok"})
    lm = to_lm(tokens, 32, order="reversed")
    assert lm.ids[0].tolist() == list(range(15, -1, -1))
    gen = dataclasses.replace(lm, ids=lm.ids.clone())
    _same(from_lm(gen), tokens)
    wrong = lm.ids.clone()
    wrong[0, 0] = lm.pad_id  # first generated id = the tokenizer's last frame
    with pytest.raises(ValueError, match="frame 15"):
        from_lm(dataclasses.replace(lm, ids=wrong))
    with pytest.raises(ValueError, match="order must be one of"):
        to_lm(tokens, 32, order="backwards")
