"""LFQ(batch_entropy="pooled"): WeTok's entropy penalty, whose batch entropy pools the groups (upstream
reduces the code probabilities over every leading axis, groups included). Reference written from the
formula, not from LFQ."""

import itertools

import torch

from zoo.quantizers.lfq import LFQ


def _reference_entropy(x: torch.Tensor, groups: int, bits: int, temperature=0.01, eps=1e-5) -> torch.Tensor:
    codes = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=bits)))  # [K, b], any code order
    xg = x.reshape(-1, groups, bits)  # [N, G, b]
    logits = 2 * xg @ codes.T / temperature  # [N, G, K]
    probs = logits.softmax(-1)
    sample = -(probs * logits.log_softmax(-1)).sum(-1).mean()  # over positions and groups
    avg = probs.reshape(-1, codes.shape[0]).mean(0)  # [K]: positions AND groups pooled
    batch = -(avg * torch.log(avg + eps)).sum()
    return sample - batch


def test_pooled_batch_entropy_matches_the_wetok_formula():
    torch.manual_seed(0)
    groups, bits = 3, 4
    x = torch.randn(5, 7, groups * bits) * torch.tensor([0.02, 0.05, 0.1]).repeat_interleave(bits)
    pooled = LFQ(bits, groups, batch_entropy="pooled", entropy_weight=0.1).train()
    got = pooled(x).losses["entropy"]
    torch.testing.assert_close(got, 0.1 * _reference_entropy(x, groups, bits), atol=1e-5, rtol=1e-5)
    per_group = LFQ(bits, groups, batch_entropy="per_group", entropy_weight=0.1).train()(x).losses["entropy"]
    assert (per_group - got).abs() > 1e-3  # the option changes the numerics
    # eval outputs are untouched by the option
    a, b = pooled.eval()(x), LFQ(bits, groups, batch_entropy="per_group").eval()(x)
    assert torch.equal(a.ids, b.ids) and torch.equal(a.quantized, b.quantized)
