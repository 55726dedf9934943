"""The shared blocks' variants are arguments of one implementation: check that they agree where they should."""

import torch
from einops import rearrange

from zoo.blocks.attention import Attention
from zoo.blocks.embeddings import sincos_2d, timestep_embedding
from zoo.blocks.resnet import ResBlock


def test_attention_layouts_agree_and_keep_their_names():
    torch.manual_seed(0)
    fused = Attention(32, 4, layout="fused")
    split = Attention(32, 4, layout="split")
    whisper = Attention(32, 4, layout="whisper", k_bias=False)
    assert set(fused.state_dict()) == {"qkv.weight", "qkv.bias", "proj.weight", "proj.bias"}
    assert set(whisper.state_dict()) == {
        "q_proj.weight", "q_proj.bias", "k_proj.weight", "v_proj.weight", "v_proj.bias", "out_proj.weight", "out_proj.bias"
    }
    wq, wk, wv = fused.qkv.weight.chunk(3)  # rows q, then k, then v
    bq, bk, bv = fused.qkv.bias.chunk(3)
    split.load_state_dict({"wq.weight": wq, "wk.weight": wk, "wv.weight": wv, "wq.bias": bq, "wk.bias": bk, "wv.bias": bv,
                           "proj.weight": fused.proj.weight, "proj.bias": fused.proj.bias})
    x = torch.randn(2, 5, 32)
    mask = torch.rand(2, 1, 5, 5) > 0.3
    mask[..., 0] = True  # every query attends somewhere
    torch.testing.assert_close(split(x, mask), fused(x, mask))


def test_sincos_2d_rows_first_swaps_the_halves():
    mae = sincos_2d(16, (3, 5))  # [15, 16]: column index first
    moco = sincos_2d(16, (3, 5), rows_first=True)
    assert mae.shape == (15, 16)
    assert torch.equal(moco, torch.cat([mae[:, 8:], mae[:, :8]], dim=1))
    cols = rearrange(mae[:, :8], "(h w) d -> h w d", h=3)
    assert torch.equal(cols[0], cols[2])  # the first half depends on the column only


def test_timestep_embedding_orders():
    t = torch.tensor([0.0, 1.5, 999.0])
    cos_first = timestep_embedding(t, 8)
    sin_first = timestep_embedding(t, 8, cos_first=False)
    assert torch.equal(cos_first, torch.cat([sin_first[:, 4:], sin_first[:, :4]], dim=1))
    assert timestep_embedding(t, 9).shape == (3, 9)


def test_resblock_shortcuts():
    torch.manual_seed(0)
    block = ResBlock(32, 64, shortcut="input")
    assert block.nin_shortcut.in_channels == 32
    quirk = ResBlock(32, 64, shortcut="output")
    assert quirk.nin_shortcut.in_channels == 64  # MaskGIT-VQGAN: the shortcut sees the block's output
    x = torch.randn(1, 32, 4, 4)
    h = quirk.conv2(torch.nn.functional.silu(quirk.norm2(quirk.conv1(torch.nn.functional.silu(quirk.norm1(x))))))
    torch.testing.assert_close(quirk(x), h + quirk.nin_shortcut(h))
    assert ResBlock(32, dims=1, bias=True)(torch.randn(2, 32, 7)).shape == (2, 32, 7)
