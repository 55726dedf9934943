"""The SEANet building blocks' fast paths give exactly what the plain torch ops give."""

import pytest
import torch
import torch.nn.functional as F

from zoo.blocks.seanet import ELU, SConv1d, SEANetResnetBlock, pad1d


@pytest.mark.parametrize("length", [1, 2, 3, 7, 50])
@pytest.mark.parametrize("left,right", [(0, 0), (0, 3), (2, 0), (3, 3), (6, 1)])
def test_pad1d_reflect_matches_torch(length, left, right):
    x = torch.randn(2, 3, length)
    y = pad1d(x, left, right)
    assert y.shape[-1] == length + left + right
    if length > max(left, right):  # torch's own reflect pad is defined there
        assert torch.equal(y, F.pad(x, (left, right), mode="reflect"))
    else:  # shorter input: zero-extended, then reflected (EnCodec's rule)
        assert torch.equal(y[..., left : left + length], x)


@pytest.mark.parametrize("length", [1, 2, 3, 7, 50])
@pytest.mark.parametrize("mode", ["reflect", "zero", "replicate"])
def test_pad1d_along_time_of_time_major_activations(length, mode):
    """pad1d(dim=1) on [B, T, C] gives the [B, C, T] padding, transposed, and stays contiguous."""
    x = torch.randn(2, 3, length)
    y = pad1d(x.transpose(1, 2).contiguous(), 3, 2, mode, dim=1)
    assert y.is_contiguous()
    assert torch.equal(y, pad1d(x, 3, 2, mode).transpose(1, 2))


@pytest.mark.parametrize("length", [1, 3, 50])
@pytest.mark.parametrize("mode", ["reflect", "zero"])
@pytest.mark.parametrize("dim", [-1, 1])
@pytest.mark.parametrize("left,right", [(0, 0), (3, 2)])
def test_pad1d_fill_equals_padding_the_filled_input(length, mode, dim, left, right):
    """fill= writes ELU(x) into the padded buffer: the same values as padding ELU(x)."""
    x = torch.randn(2, 4, length)
    elu = ELU()
    with torch.inference_mode():
        assert torch.equal(pad1d(x, left, right, mode, dim=dim, fill=elu.into), pad1d(elu(x), left, right, mode, dim=dim))


@pytest.mark.parametrize("k,stride,dilation,causal,groups", [(7, 1, 1, False, 1), (3, 1, 2, False, 1), (8, 4, 1, False, 1),
                                                            (10, 5, 1, True, 1), (1, 1, 1, False, 1), (3, 1, 1, False, 2)])
@pytest.mark.parametrize("length", [5, 97])
def test_time_major_sconv1d_equals_forward(k, stride, dilation, causal, groups, length):
    """The inference path on time-major activations (channels-last convs) computes forward's values."""
    torch.manual_seed(0)
    layer = SConv1d(4, 6, k, stride=stride, dilation=dilation, causal=causal, groups=groups).eval()
    blocks = [SEANetResnetBlock(4, 3, dilation).eval(), SEANetResnetBlock(4, 3, dilation, true_skip=True).eval()]
    x = torch.randn(2, 4, length)
    with torch.inference_mode():
        fast = layer.forward_time_major(x.transpose(1, 2).contiguous())
        assert fast.is_contiguous()
        torch.testing.assert_close(fast.transpose(1, 2), layer(x), rtol=1e-5, atol=1e-6)
        for block in blocks:  # the last 1x1 conv accumulates onto the shortcut (a 1x1 conv, or the identity)
            torch.testing.assert_close(block.forward_time_major(x.transpose(1, 2).contiguous()).transpose(1, 2),
                                       block(x), rtol=1e-5, atol=1e-6)


def test_conv_stack_fast_path_keeps_hooks_and_fp32_islands():
    """The time-major inference path calls no module hooks itself, so a layer with a hook in it runs its plain
    forward: a probe fires, and a keep_fp32 island inside the stack computes in fp32 under bf16 autocast."""
    from zoo.blocks.seanet import SEANetEncoder
    from zoo.runtime import keep_fp32

    torch.manual_seed(0)
    enc = SEANetEncoder(n_filters=4, dimension=8, strides=(2, 2), lstm=0).eval()
    x = torch.randn(1, 1, 64)
    with torch.inference_mode():
        ref = enc(x)
    seen = {}

    def probe(m, args, out):
        seen.setdefault("probe", out.shape)

    def island(m, args, out):
        seen.setdefault("island", (args[0].dtype, out.dtype))

    enc.model[1].block[1].register_forward_hook(probe)
    keep_fp32(enc.model[3])  # the first strided conv
    enc.model[3].register_forward_hook(island)
    with torch.inference_mode():
        torch.testing.assert_close(enc(x), ref, rtol=1e-5, atol=1e-6)  # hooked layers: the same values
        assert seen["probe"] == (1, 2, 64)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            enc(x)
    assert seen["island"] == (torch.float32, torch.float32)


def test_pointwise_sconv1d_equals_conv1d():
    torch.manual_seed(0)
    layer = SConv1d(8, 5, 1).eval()
    x = torch.randn(3, 8, 40)
    with torch.no_grad():
        expected = F.conv1d(x, layer.conv.weight, layer.conv.bias)
        torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("alpha", [1.0, 0.5, 1.5])
def test_fast_elu_matches_aten_elu(alpha):
    """Inference ELU (exp - 1): within 1e-7 of F.elu over the whole range, finite at the extremes;
    with autograd it is F.elu itself (same values and gradients)."""
    from zoo.blocks.seanet import ELU

    x = torch.cat([torch.linspace(-100, 100, 20001), torch.tensor([0.0, -0.0, 1e-30, -1e-30, 1e4, -1e4]),
                   -torch.logspace(-12, 0, 500)])  # near 0-: where exp(x) - 1 and x are one ulp apart
    with torch.inference_mode():
        fast = ELU(alpha)(x)
    ref = torch.nn.functional.elu(x, alpha)
    assert torch.isfinite(fast).all()
    assert (fast - ref).abs().max().item() < 1e-7 * max(1.0, alpha)
    assert torch.equal(fast[x > 0], x[x > 0])
    xg = x.clone().requires_grad_(True)
    ELU(alpha)(xg).sum().backward()
    x2 = x.clone().requires_grad_(True)
    torch.nn.functional.elu(x2, alpha).sum().backward()
    assert torch.equal(xg.grad, x2.grad)
    small = -torch.logspace(-6, -1, 50)  # bf16 would cancel exp(x) - 1 to zero here
    with torch.inference_mode():
        assert torch.equal(ELU(alpha)(small.bfloat16()), torch.nn.functional.elu(small.bfloat16(), alpha))
