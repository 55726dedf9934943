"""VectorQuantizer(output_dim=...): quantized output width differs from the input width (Selftok)."""

import torch
from torch import nn

from zoo.quantizers.vq import VectorQuantizer


def test_output_dim_projection_and_identity():
    vq = VectorQuantizer(32, 64, 8, output_dim=8, cosine=True).eval()
    assert isinstance(vq.project_in, nn.Linear) and isinstance(vq.project_out, nn.Identity)
    out = vq(torch.randn(2, 5, 32))
    assert out.quantized.shape == (2, 5, 8)
    torch.testing.assert_close(out.quantized.norm(dim=-1), torch.ones(2, 5))  # unit codes passed on as they are
    torch.testing.assert_close(vq.ids_to_quantized(out.ids), out.quantized)
    vq2 = VectorQuantizer(32, 64, 8, output_dim=12)
    assert vq2.project_out.out_features == 12 and vq2(torch.randn(3, 32)).quantized.shape == (3, 12)
    assert VectorQuantizer(32, 64, 8).project_out.out_features == 32  # default: back to dim
