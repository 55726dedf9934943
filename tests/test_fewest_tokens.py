"""zoo.inputs.fewest_tokens: the one bisection behind encode(target_psnr=) of every ordered-1D family."""

import pytest
import torch

import zoo
from zoo.inputs import check_target_psnr, fewest_tokens


def _psnr(recon, x):
    return 10 * torch.log10(1 / (recon - x).pow(2).flatten(1).mean(1))


def test_bisection_finds_the_first_k_on_a_monotone_toy():
    """Item b reconstructs with error 1 / (k + b): PSNR = 20 log10(k + b), the fewest k is exact."""
    x = torch.zeros(4, 3, 2, 2)
    calls = []

    def decode(items, ids, n):
        calls.append((items.tolist(), ids.shape[1]))
        assert bool((n <= ids.shape[1]).all())
        return torch.ones(len(items), 3, 2, 2) / (n + items)[:, None, None, None].float()

    got = fewest_tokens(x, torch.zeros(4, 16, dtype=torch.long), 20.0, decode)  # needs k + b >= 10
    assert got.tolist() == [10, 9, 8, 7]
    assert len(calls) == 4 and calls[0] == ([0, 1, 2, 3], 8)  # ceil(log2 16) rounds, the batch decoded together
    assert fewest_tokens(x, torch.zeros(4, 16, dtype=torch.long), 99.0, decode).tolist() == [16] * 4
    assert fewest_tokens(x[:1], torch.zeros(1, 1, dtype=torch.long), 99.0, decode).tolist() == [1]


def test_target_psnr_values():
    assert check_target_psnr(25) == 25.0
    for bad in (float("nan"), float("-inf"), "30", True, None):
        with pytest.raises(ValueError, match="finite number of dB"):
            check_target_psnr(bad)


@pytest.mark.parametrize("name", ["flextok-tiny-64", "selftok-tiny-64"])  # one-d-piece: tests/tokenizers
def test_embedded_flow_models_pick_the_fewest_tokens(name):
    """The chosen prefix reaches the target when decoded with the search's noise (seed 0, default
    steps); one token fewer does not (these trained models gain quality with k on this image)."""
    tok = zoo.load(name)
    x = torch.nn.functional.interpolate(torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)), size=64,
                                        mode="bilinear")

    def decode(tokens):
        return tok.decode(tokens, generator=torch.Generator().manual_seed(0))

    full = tok.encode(x)
    target = float(_psnr(decode(full[:, :4]), x).max()) - 0.05  # one item reaches it by 4 tokens
    got = tok.encode(x, target_psnr=target)
    assert torch.equal(got.ids, full.ids) and got.meta["target_psnr"] == target
    assert 1 <= int(got.lengths.min()) <= 4
    assert bool((_psnr(decode(got), x) >= target).all())  # per-item lengths, the search's noise
    fewer = zoo.Tokens(ids=got.ids, layout="1d", lengths=got.lengths.clamp(min=2) - 1, meta=got.meta)
    assert bool((_psnr(decode(fewer), x) < target)[got.lengths > 1].all())
