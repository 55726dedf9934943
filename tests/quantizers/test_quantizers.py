"""Behaviour of the shared quantizers: gradients, id bijections, eval determinism, EMA / restarts,
residual and multi-scale refinement, LFQ bit packing and entropy, token dropout, state dicts."""

from __future__ import annotations

import io
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from zoo.quantizers import (
    FSQ,
    LFQ,
    GaussianBottleneck,
    MultiScaleResidualQuantizer,
    NestedDropout,
    ResidualVQ,
    TailTokenDrop,
    VectorQuantizer,
)
from zoo.quantizers.vq import kmeans, nearest_codes


def seeded(fn, seed=0):
    torch.manual_seed(seed)
    return fn()


# Small instances of every scheme: (name, factory, input shape).
CASES = {
    "vq_learned": (lambda: VectorQuantizer(8, 16), (2, 10, 8)),
    "vq_ema_kmeans": (lambda: VectorQuantizer(8, 16, ema_decay=0.9, kmeans_init=True, dead_code_threshold=0.5), (2, 10, 8)),
    "vq_cosine_proj": (lambda: VectorQuantizer(8, 16, 4, cosine=True), (2, 10, 8)),
    "rvq": (lambda: ResidualVQ(8, 3, 16, ema_decay=0.9, kmeans_init=True, quantizer_dropout=0.5), (2, 10, 8)),
    "fsq": (lambda: FSQ([3, 4, 5]), (2, 10, 3)),
    "fsq_proj": (lambda: FSQ([8, 5], dim=8), (2, 10, 8)),
    "lfq": (lambda: LFQ(3, 2), (2, 10, 6)),
    "lfq_proj": (lambda: LFQ(4, 2, dim=12), (2, 10, 12)),
    "multiscale_1d": (lambda: MultiScaleResidualQuantizer(8, 16, (1, 2, 4, 8)), (2, 8, 8)),
    "multiscale_2d": (lambda: MultiScaleResidualQuantizer(8, 16, (1, 2, 4), spatial_dims=2), (2, 4, 4, 8)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_straight_through_gradients_reach_the_encoder(name):
    factory, shape = CASES[name]
    q = seeded(factory).train()
    encoder = torch.nn.Linear(shape[-1], shape[-1])
    x = torch.randn(shape)
    out = q(encoder(x))
    assert out.quantized.shape == x.shape
    loss = out.quantized.pow(2).sum() + sum(out.losses.values(), torch.zeros(()))
    loss.backward()
    assert encoder.weight.grad is not None and encoder.weight.grad.abs().sum() > 0
    assert torch.isfinite(encoder.weight.grad).all()


def test_straight_through_is_identity_without_projections():
    for q in (VectorQuantizer(4, 8), FSQ([5, 5, 5, 5]), LFQ(2, 2)):
        z = torch.randn(3, 4, requires_grad=True)
        q.eval()(z).quantized.sum().backward()
        assert torch.equal(z.grad, torch.ones_like(z)) or isinstance(q, FSQ)  # FSQ's bound has a tanh slope
        if isinstance(q, FSQ):
            assert (z.grad > 0).all()


@pytest.mark.parametrize("name", sorted(CASES))
def test_eval_is_deterministic_and_never_updates_buffers(name):
    factory, shape = CASES[name]
    q = seeded(factory).eval()
    before = {k: v.clone() for k, v in q.state_dict().items()}
    x = torch.randn(shape) * 3
    a, b = q(x), q(x)
    assert torch.equal(a.ids, b.ids) and torch.equal(a.quantized, b.quantized)
    after = q.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), f"{k} changed in eval mode"


@pytest.mark.parametrize("name", sorted(CASES))
def test_ids_decode_to_the_forward_output(name):
    factory, shape = CASES[name]
    q = seeded(factory).eval()
    with torch.no_grad():
        out = q(torch.randn(shape))
        assert out.ids.dtype == torch.long
        assert int(out.ids.min()) >= 0 and int(out.ids.max()) < q.codebook_size
        torch.testing.assert_close(q.ids_to_quantized(out.ids), out.quantized, atol=1e-5, rtol=1e-5)


def test_every_id_round_trips_through_codes():
    with torch.no_grad():
        vq = seeded(lambda: VectorQuantizer(8, 32, 4, cosine=True))
        ids = torch.arange(32)
        assert torch.equal(vq.codes_to_ids(vq.ids_to_codes(ids)), ids)
        ema = seeded(lambda: VectorQuantizer(8, 32, ema_decay=0.99))
        assert torch.equal(ema.codes_to_ids(ema.ids_to_codes(ids)), ids)

        fsq = FSQ([3, 4, 5, 2])
        ids = torch.arange(fsq.codebook_size)
        codes = fsq.ids_to_codes(ids)
        assert torch.equal(fsq.codes_to_ids(codes), ids)
        assert codes.abs().max() <= 1 and len({tuple(c) for c in codes.tolist()}) == fsq.codebook_size
        # every id is reachable by forward: invert the bound for each code and quantize the pre-image
        levels = torch.tensor(fsq.levels, dtype=torch.float32)
        half_l, offset = (levels - 1) * (1 + 1e-3) / 2, (torch.tensor(fsq.levels) % 2 == 0).float() * 0.5
        target = codes * (torch.tensor(fsq.levels) // 2)  # integer level in [-L//2, L//2]
        pre = torch.atanh((target + offset) / half_l) - torch.atanh(offset / half_l)
        assert torch.equal(fsq(pre).ids, ids)

        big = FSQ([8, 8, 8, 5, 5, 5])
        assert big.codebook_size == 64000
        ids = torch.arange(64000)
        assert torch.equal(big.codes_to_ids(big.ids_to_codes(ids)), ids)

        lfq = LFQ(3, 2)
        ids = torch.tensor(list(itertools.product(range(8), range(8))))  # every (g0, g1)
        assert torch.equal(lfq.codes_to_ids(lfq.ids_to_codes(ids)), ids)

        rvq = seeded(lambda: ResidualVQ(6, 2, 8, codebook_dim=3))
        ids = torch.tensor(list(itertools.product(range(8), range(8))))  # [64, 2]
        assert torch.equal(rvq.codes_to_ids(rvq.ids_to_codes(ids)), ids)

        ms = seeded(lambda: MultiScaleResidualQuantizer(4, 8, (1, 2)))
        ids = torch.arange(8).repeat_interleave(3).reshape(8, 3)
        assert torch.equal(ms.codes_to_ids(ms.ids_to_codes(ids)), ids)


def test_fsq_quantize_hits_every_level_and_matches_the_formula():
    fsq = FSQ([8, 5])
    z = torch.linspace(-6, 6, 2001)[:, None].expand(-1, 2)
    codes = fsq.quantize(z)
    assert torch.equal(codes[:, 0].unique() * 4, torch.arange(-4, 4).float())  # even L: 8 levels, -4..3
    assert torch.equal(codes[:, 1].unique() * 2, torch.arange(-2, 3).float())  # odd L: 5 levels, -2..2
    half_l = torch.tensor([7.0, 4.0]) * (1 + 1e-3) / 2
    offset = torch.tensor([0.5, 0.0])
    want = torch.round(torch.tanh(z + torch.atanh(offset / half_l)) * half_l - offset) / torch.tensor([4.0, 2.0])
    assert torch.equal(codes, want)
    # worked example from the module docstring: codes (0.25, -0.5) -> digits (5, 1) -> 5 + 1 * 8
    assert fsq.codes_to_ids(torch.tensor([0.25, -0.5])).item() == 13


def test_group_lfq_bit_packing_worked_example():
    lfq = LFQ(4, 2)
    x = torch.tensor([[0.3, -1.2, 0.0, 2.0, -0.1, 0.5, 0.7, -3.0]])
    out = lfq.eval()(x)
    # group 0 bits (LSB first) 1,0,0,1 -> 9; group 1 bits 0,1,1,0 -> 6 (0.0 is not > 0, so it is a 0 bit)
    assert out.ids.tolist() == [[9, 6]]
    assert out.quantized.tolist() == [[1.0, -1.0, -1.0, 1.0, -1.0, 1.0, 1.0, -1.0]]
    assert lfq.ids_to_codes(torch.tensor([9, 6])).tolist() == [1.0, -1.0, -1.0, 1.0, -1.0, 1.0, 1.0, -1.0]
    assert lfq.num_codebooks == 2 and lfq.codebook_size == 16


def test_lfq_entropy_matches_a_brute_force_computation():
    torch.manual_seed(0)
    b, g, temp = 3, 2, 0.5
    x = torch.randn(40, g * b)
    for mode in ("pooled", "per_group"):
        lfq = LFQ(b, g, temperature=temp, batch_entropy=mode, entropy_weight=1.0, commitment_weight=0.0).train()
        codebook = torch.tensor([[1.0 if (k >> j) & 1 else -1.0 for j in range(b)] for k in range(2**b)])
        logits = 2 * x.reshape(40, g, b) @ codebook.t() / temp  # [N, G, K]
        p = logits.softmax(-1)
        sample = -(p * p.log()).sum(-1).mean()
        avg = p.mean(dim=(0, 1), keepdim=False)[None] if mode == "pooled" else p.mean(0)
        batch = -(avg * torch.log(avg + 1e-5)).sum(-1).mean()
        got = lfq(x).losses["entropy"]
        torch.testing.assert_close(got, sample - batch, atol=1e-5, rtol=1e-5)


def test_group_lfq_memory_does_not_grow_with_the_joint_vocabulary():
    # 8 groups x 8 bits = 2^64 joint codes: only possible if entropy is per group (8 x 256 logits per token)
    lfq = LFQ(8, 8).train()
    z = torch.randn(4, 64, 64, requires_grad=True)
    out = lfq(z)
    assert out.ids.shape == (4, 64, 8)
    assert torch.isfinite(out.losses["entropy"])
    out.losses["entropy"].backward()
    assert z.grad.abs().sum() > 0


def test_nearest_codes_is_exact_and_chunked():
    torch.manual_seed(0)
    x, c = torch.randn(1000, 6), torch.randn(37, 6)
    brute = ((x[:, None] - c[None]) ** 2).sum(-1).argmin(-1)
    assert torch.equal(nearest_codes(x, c), brute)
    assert torch.equal(nearest_codes(x, c, chunk_elements=37 * 7), brute)  # 7 rows per chunk
    xw, cw = torch.randn(300, 96), torch.randn(37, 96)  # wide codes: at least D (96) rows per chunk, not 7
    assert torch.equal(nearest_codes(xw, cw, chunk_elements=37 * 7), ((xw[:, None] - cw[None]) ** 2).sum(-1).argmin(-1))


def test_kmeans_init_runs_on_the_first_training_batch_only():
    vq = seeded(lambda: VectorQuantizer(4, 8, ema_decay=0.99, kmeans_init=True))
    assert not bool(vq.initialized)
    vq.eval()(torch.randn(50, 4))
    assert not bool(vq.initialized)  # never in eval
    data = torch.randn(200, 4) + 5.0  # far from the random init
    vq.train()(data)
    assert bool(vq.initialized)
    # every code is now a cluster mean of the batch: near the data
    assert (vq.codebook.mean(0) - data.mean(0)).abs().max() < 1.0
    snapshot = vq.codebook.clone()
    vq.train()(data - 10.0)  # no second k-means: only an EMA step (decay 0.99) moves the codes
    assert (vq.codebook - snapshot).abs().max() < 2.0


def test_kmeans_recovers_separated_clusters():
    torch.manual_seed(0)
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = (centers[:, None] + 0.1 * torch.randn(3, 100, 2)).reshape(-1, 2)
    means, counts = kmeans(x, 3, iters=20)
    got = sorted(map(tuple, means.round().tolist()))
    assert got == sorted(map(tuple, centers.tolist())) or counts.min() == 0  # a bad draw leaves a cluster empty


def test_ema_updates_move_codes_to_the_data_and_restarts_revive_dead_codes():
    torch.manual_seed(0)
    data = torch.randn(512, 4) * 0.5 + 3.0  # every code starts far away, one happens to win everything
    usage = {}
    for threshold in (0.0, 0.5):
        vq = seeded(lambda: VectorQuantizer(4, 32, ema_decay=0.8, dead_code_threshold=threshold)).train()
        for _ in range(15):
            out = vq(data[torch.randperm(512)[:256]])
        vq.eval()
        with torch.no_grad():
            out = vq(data)
        usage[threshold] = float(out.metrics["usage"])
        err = (vq.ids_to_quantized(out.ids) - data).pow(2).mean()
        assert err < 1.0  # EMA pulled the used codes onto the data (the init is ~9 away)
    assert usage[0.0] <= 4 / 32  # without restarts only the few codes that won at the start stay in use
    assert usage[0.5] > 0.5 and usage[0.5] > 4 * usage[0.0]  # restarts re-seed dead codes from batch vectors


def test_learned_codebook_gets_the_codebook_loss_gradient():
    vq = seeded(lambda: VectorQuantizer(4, 8, commitment_weight=0.25, codebook_weight=1.0)).train()
    out = vq(torch.randn(20, 4))
    assert set(out.losses) == {"commitment", "codebook"}
    out.losses["codebook"].backward()
    assert vq.codebook.grad is not None and vq.codebook.grad.abs().sum() > 0
    ema = VectorQuantizer(4, 8, ema_decay=0.9).train()
    assert set(ema(torch.randn(20, 4)).losses) == {"commitment"}
    assert not any(p is ema.codebook for p in ema.parameters())


def test_residual_vq_error_falls_as_layers_are_added():
    torch.manual_seed(0)
    data = torch.randn(8, 64, 16)
    rvq = seeded(lambda: ResidualVQ(16, 6, 32, ema_decay=0.8, kmeans_init=True, kmeans_iters=5)).train()
    for _ in range(5):
        rvq(data)
    rvq.eval()
    with torch.no_grad():
        out = rvq(data)
        assert out.ids.shape == (8, 64, 6)  # layer axis last
        errs = [float((data - rvq.ids_to_quantized(out.ids[..., :q])).pow(2).mean()) for q in range(1, 7)]
        assert all(b < a for a, b in zip(errs, errs[1:])), errs
        short = rvq(data, num_quantizers=3)
        assert torch.equal(short.ids, out.ids[..., :3])
    with pytest.raises(ValueError, match="num_quantizers"):
        rvq(data, num_quantizers=7)


def test_residual_vq_quantizer_dropout_is_seedable_and_training_only():
    rvq = seeded(lambda: ResidualVQ(8, 4, 16, quantizer_dropout=1.0)).train()
    z = torch.randn(16, 5, 8)
    a = rvq(z, generator=torch.Generator().manual_seed(3)).quantized
    b = rvq(z, generator=torch.Generator().manual_seed(3)).quantized
    assert torch.equal(a, b)
    full = rvq.eval()(z).quantized
    assert not torch.equal(a, full)  # some items used fewer layers
    ids = rvq(z).ids
    # each dropped item equals the sum of its first k layers for some k
    per_layer = rvq.ids_to_codes(ids)  # [B, T, Q, D]
    for i in range(16):
        assert any(torch.allclose(a[i], per_layer[i, :, :k].sum(-2), atol=1e-6) for k in range(1, 5))


def test_multiscale_error_falls_as_scales_are_added():
    torch.manual_seed(0)
    z = torch.randn(4, 16, 8)
    ms = seeded(lambda: MultiScaleResidualQuantizer(8, 64, (1, 2, 4, 8, 16), num_phi=0)).train()
    opt = torch.optim.Adam(ms.parameters(), lr=3e-2)
    for _ in range(40):
        loss = sum(ms(z).losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    ms.eval()
    with torch.no_grad():
        out = ms(z)
        assert out.ids.shape == (4, 1 + 2 + 4 + 8 + 16)
        cum = list(itertools.accumulate(ms.scale_sizes))
        errs = [float((z - ms.ids_to_quantized(out.ids[:, :n])).pow(2).mean()) for n in cum]
        assert all(b < a for a, b in zip(errs, errs[1:])), errs
        assert ms.next_scale_inputs(out.ids).shape == (4, sum(ms.scale_sizes[1:]), 8)
        with pytest.raises(ValueError, match="first s scales"):
            ms.ids_to_quantized(out.ids[:, :2])


def test_multiscale_phi_sharing_and_2d_layout():
    ms = MultiScaleResidualQuantizer(4, 8, (1, 2, 3, (4, 6)), spatial_dims=2, num_phi=2)
    assert ms.scale_sizes == [1, 4, 9, 24] and len(ms.phis) == 2
    with torch.no_grad():
        out = ms.eval()(torch.randn(2, 4, 6, 4))
    assert out.ids.shape == (2, 38) and out.quantized.shape == (2, 4, 6, 4)
    parts = ms.split_ids(out.ids)
    assert [tuple(p.shape) for p in parts] == [(2, 1, 1), (2, 2, 2), (2, 3, 3), (2, 4, 6)]


def test_gaussian_bottleneck():
    g = seeded(lambda: GaussianBottleneck(8, 4))
    x = torch.randn(2, 5, 8)
    ev = g.eval()(x)
    assert torch.equal(ev.sample, ev.mean) and ev.sample.shape == (2, 5, 4)
    tr1 = g.train()(x, generator=torch.Generator().manual_seed(1))
    tr2 = g.train()(x, generator=torch.Generator().manual_seed(1))
    assert torch.equal(tr1.sample, tr2.sample) and not torch.equal(tr1.sample, tr1.mean)
    raw = GaussianBottleneck(8, project=False)
    zero = raw(torch.zeros(3, 8))
    assert float(zero.kl) == 0.0  # N(0, I) posterior
    ms = MultiScaleResidualQuantizer(4, 16, (1, 2, 5))
    assert ms(tr1.sample).quantized.shape == (2, 5, 4)  # composes with the multi-scale quantizer


def test_nested_dropout_keeps_exactly_the_prefix():
    d = seeded(lambda: NestedDropout(6, 16, mode="uniform")).train()
    x = torch.randn(32, 16, 6)
    out = d(x, generator=torch.Generator().manual_seed(0))
    again = d(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.x, again.x) and torch.equal(out.keep, again.keep)
    assert len(out.keep.unique()) > 1  # drawn per sample
    for i, k in enumerate(out.keep.tolist()):
        assert 1 <= k <= 16
        assert torch.equal(out.x[i, :k], x[i, :k])
        assert torch.equal(out.x[i, k:], d.mask_token.detach().expand(16 - k, 6))
    # eval: identity, unless a keep is given (inference with a chosen prefix length)
    assert torch.equal(d.eval()(x).x, x)
    chosen = d.eval()(x, keep=3).x
    assert torch.equal(chosen[:, :3], x[:, :3]) and torch.equal(chosen[:, 3:], d.mask_token.detach().expand(32, 13, 6))
    zeros = NestedDropout(6, 16, fill="zeros").train()(x, keep=torch.full((32,), 5))
    assert torch.equal(zeros.x[:, 5:], torch.zeros(32, 11, 6))


@pytest.mark.parametrize(
    "mode, choices, allowed",
    [("pow2", None, {1, 2, 4, 8, 16}), ("uniform_pow2", None, {1, 2, 4, 8, 16}), ("uniform", (3, 7), {3, 7})],
)
def test_nested_dropout_draws_from_the_promised_set(mode, choices, allowed):
    d = NestedDropout(2, 16, mode=mode, choices=choices)
    keep = d.sample_keep(2000, torch.Generator().manual_seed(0))
    assert set(keep.tolist()) == allowed


def test_tail_token_drop():
    t = TailTokenDrop().train()
    x = torch.randn(4, 10, 3)
    ks = set()
    for seed in range(30):
        out = t(x, generator=torch.Generator().manual_seed(seed))
        k = int(out.keep[0])
        assert torch.equal(out.x, x[:, :k]) and (out.keep == k).all()  # one k per batch, exact prefix
        ks.add(k)
    assert len(ks) > 3 and ks <= set(range(1, 11))
    assert torch.equal(t.eval()(x).x, x)
    assert torch.equal(t.eval()(x, keep=4).x, x[:, :4])
    with pytest.raises(ValueError, match="keep must lie"):
        t(x, keep=11)


@pytest.mark.parametrize("name", sorted(CASES))
def test_state_dict_save_and_load(name):
    factory, shape = CASES[name]
    src = seeded(factory, seed=1).train()
    x = torch.randn(shape)
    src(x)  # k-means / EMA state moves off its init
    buf = io.BytesIO()
    torch.save(src.state_dict(), buf)
    buf.seek(0)
    dst = seeded(factory, seed=2)
    dst.load_state_dict(torch.load(buf, weights_only=True), strict=True)
    src.eval(), dst.eval()
    with torch.no_grad():
        assert torch.equal(src(x).ids, dst(x).ids)
        assert torch.equal(src(x).quantized, dst(x).quantized)


def test_state_dict_names_are_the_documented_ones():
    assert set(VectorQuantizer(4, 8, 2, ema_decay=0.9).state_dict()) == {
        "codebook", "cluster_size", "embed_sum", "initialized",
        "project_in.weight", "project_in.bias", "project_out.weight", "project_out.bias",
    }
    assert set(VectorQuantizer(4, 8).state_dict()) == {"codebook", "cluster_size", "initialized"}
    assert set(ResidualVQ(4, 2, 8).state_dict()) == {f"layers.{i}.{k}" for i in range(2) for k in ("codebook", "cluster_size", "initialized")}
    assert FSQ([8, 5]).state_dict() == {} and LFQ(4, 2).state_dict() == {}


def test_bad_input_is_a_sentence():
    with pytest.raises(ValueError, match="channel-last"):
        VectorQuantizer(8, 16)(torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 15\]"):
        VectorQuantizer(8, 16).ids_to_codes(torch.tensor([16]))
    with pytest.raises(ValueError, match="levels"):
        FSQ([1, 4])
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 59\]"):
        FSQ([3, 4, 5]).ids_to_codes(torch.tensor([60]))
    with pytest.raises(ValueError, match="group axis"):
        LFQ(4, 2).ids_to_codes(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="layer axis"):
        ResidualVQ(4, 2, 8).ids_to_quantized(torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="grow strictly"):
        MultiScaleResidualQuantizer(4, 8, (2, 2, 4))
    with pytest.raises(ValueError, match="last scale"):
        MultiScaleResidualQuantizer(4, 8, (1, 2, 4))(torch.randn(1, 5, 4))
    with pytest.raises(ValueError, match="ema_decay"):
        VectorQuantizer(4, 8, ema_decay=1.5)
    with pytest.raises(ValueError, match="mode"):
        NestedDropout(4, 8, mode="geometric")


def test_metrics_report_usage_and_perplexity():
    vq = VectorQuantizer(2, 4).eval()
    vq.codebook.data = torch.tensor([[1.0, 0], [-1, 0], [0, 1], [0, -1]])
    out = vq(torch.tensor([[2.0, 0], [-2, 0], [0, 2], [0, -2]]))
    assert out.ids.tolist() == [0, 1, 2, 3]
    assert math.isclose(float(out.metrics["perplexity"]), 4.0, rel_tol=1e-5) and float(out.metrics["usage"]) == 1.0
    one = vq(torch.tensor([[2.0, 0], [3, 0]]))
    assert math.isclose(float(one.metrics["perplexity"]), 1.0, rel_tol=1e-5) and float(one.metrics["usage"]) == 0.25


def test_vector_quantizer_says_when_fsdp_would_lose_its_writes():
    """A learned codebook written inside forward (dead-code restarts, a pending k-means init) cannot train under FSDP2;
    an EMA codebook (a buffer), a plain learned one and a frozen one can."""
    assert VectorQuantizer(4, 8, ema_decay=0.99, dead_code_threshold=1.0, kmeans_init=True).fsdp_unsupported() is None
    assert VectorQuantizer(4, 8).fsdp_unsupported() is None
    assert "restarts dead codes" in VectorQuantizer(4, 8, dead_code_threshold=1.0).fsdp_unsupported()
    assert "k-means" in VectorQuantizer(4, 8, kmeans_init=True).fsdp_unsupported()
    assert VectorQuantizer(4, 8, dead_code_threshold=1.0).requires_grad_(False).fsdp_unsupported() is None
