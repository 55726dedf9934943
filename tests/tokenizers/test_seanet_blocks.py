"""The SEANet building blocks' fast paths give exactly what the plain torch ops give."""

import pytest
import torch
import torch.nn.functional as F

from zoo.blocks.seanet import SConv1d, pad1d


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


def test_pointwise_sconv1d_equals_conv1d():
    torch.manual_seed(0)
    layer = SConv1d(8, 5, 1).eval()
    x = torch.randn(3, 8, 40)
    with torch.no_grad():
        expected = F.conv1d(x, layer.conv.weight, layer.conv.bias)
        torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-6)
