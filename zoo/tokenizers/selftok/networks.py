"""Selftok's networks: the dual-stream Q-Former encoder and the SD3-style MMDiT decoders (flow and renderer)."""

from __future__ import annotations

from functools import partial

import torch
from einops import rearrange
from torch import Tensor, nn

from zoo.blocks.attention import Attention, attend, split_heads
from zoo.blocks.embeddings import TimestepEmbedder, sincos_1d, sincos_2d
from zoo.blocks.mlp import Mlp
from zoo.blocks.transformer import modulate

from .config import SelftokConfig, token_positions

_GELU_TANH = partial(nn.GELU, approximate="tanh")  # the MLPs' activation, as DiT / SD3


# ----------------------------------------------------------------------------------------------
# encoder: dual-stream Q-Former
# ----------------------------------------------------------------------------------------------
class DualAttention(Attention):
    """Latent patches attend among themselves (the inherited attention: qkv, proj); queries attend to
    [latent patches, queries] (to_query_kv, query_linear, query_proj)."""

    def __init__(self, dim: int, heads: int, query_dim: int, query_heads: int):
        super().__init__(dim, heads)
        self.query_heads = query_heads
        self.to_query_kv = nn.Linear(dim, 2 * query_dim)  # latent patches -> keys/values of the query stream
        self.query_linear = nn.Linear(query_dim, 3 * query_dim)
        self.query_proj = nn.Linear(query_dim, query_dim)

    def forward(self, x: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:  # x: [B, N, D], q: [B, K, Dq]
        pk, pv = split_heads(self.to_query_kv(x), self.query_heads, parts=2)  # [B, Hq, N, dq]
        qq, qk, qv = split_heads(self.query_linear(q), self.query_heads, parts=3)  # [B, Hq, K, dq]
        q_out = attend(qq, torch.cat([pk, qk], 2), torch.cat([pv, qv], 2))  # [B, K, Dq]
        return super().forward(x), self.query_proj(q_out)


class DualBlock(nn.Module):
    """Pre-LN block over both streams; the query stream is adaLN-modulated per query position."""

    def __init__(self, dim: int, heads: int, query_dim: int, query_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.q_norm1 = nn.LayerNorm(query_dim, elementwise_affine=False, eps=1e-6)
        self.q_norm2 = nn.LayerNorm(query_dim, elementwise_affine=False, eps=1e-6)
        self.attn = DualAttention(dim, heads, query_dim, query_heads)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act=_GELU_TANH)
        self.q_mlp = Mlp(query_dim, int(query_dim * mlp_ratio), act=_GELU_TANH)
        self.t_embedder = TimestepEmbedder(query_dim)  # embeds the query positions
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(query_dim, 6 * query_dim))

    def forward(self, x: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:  # x: [B, N, D], q: [B, K, Dq]
        pos = self.t_embedder(token_positions(q.shape[1], q.device))  # [K, Dq]
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(pos)[None].chunk(6, dim=-1)  # [1, K, Dq]
        x_attn, q_attn = self.attn(self.norm1(x), modulate(self.q_norm1(q), shift1, scale1))
        x = x + x_attn
        x = x + self.mlp(self.norm2(x))
        q = q + gate1 * q_attn
        q = q + gate2 * self.q_mlp(modulate(self.q_norm2(q), shift2, scale2))
        return x, q


class SelftokEncoder(nn.Module):
    """Normalised latent [B, C, h, w] -> query features [B, K, Dq]."""

    def __init__(self, cfg: SelftokConfig):
        super().__init__()
        self.patch_size, self.pos_max = cfg.encoder_patch_size, cfg.encoder_pos_max
        self.patch_embed = nn.Conv2d(cfg.latent_channels, cfg.encoder_width, cfg.encoder_patch_size, cfg.encoder_patch_size)
        self.register_buffer("pos_embed", sincos_2d(cfg.encoder_width, cfg.encoder_pos_max)[None])  # [1, M*M, D]
        self.query_tokens = nn.Parameter(torch.randn(1, cfg.num_tokens, cfg.query_width) * 0.02)
        self.blocks = nn.ModuleList(
            DualBlock(cfg.encoder_width, cfg.encoder_heads, cfg.query_width, cfg.query_heads, cfg.mlp_ratio)
            for _ in range(cfg.encoder_depth)
        )

    def forward(self, latents: Tensor) -> Tensor:
        x = self.patch_embed(latents)  # [B, D, h/p, w/p]
        gh, gw = x.shape[-2:]
        x = rearrange(x, "b d h w -> b (h w) d")  # [B, N, D]
        x = x + _center_crop_table(self.pos_embed, self.pos_max, gh, gw)
        q = self.query_tokens.expand(x.shape[0], -1, -1)  # [B, K, Dq]
        for block in self.blocks:
            x, q = block(x, q)
        return q


def _center_crop_table(table: Tensor, side: int, h: int, w: int) -> Tensor:
    """[1, side*side, D] position table -> its centred h x w window [1, h*w, D]."""
    if h > side or w > side:
        raise ValueError(f"Selftok supports latent grids up to {side}x{side} patches; got {h}x{w}.")
    top, left = (side - h) // 2, (side - w) // 2
    grid = rearrange(table, "1 (h w) d -> 1 h w d", h=side)[:, top : top + h, left : left + w]
    return rearrange(grid, "1 h w d -> 1 (h w) d")


# ----------------------------------------------------------------------------------------------
# decoder: SD3-style MMDiT with a per-token-position modulated context stream
# ----------------------------------------------------------------------------------------------
class StreamBlock(nn.Module):
    """One stream of an MMDiT joint block (upstream DismantledBlock): adaLN, qkv, proj, MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, pre_only: bool = False, position_modulated: bool = False):
        super().__init__()
        self.pre_only = pre_only
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads, out_proj=not pre_only)
        if not pre_only:
            self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
            self.mlp = Mlp(dim, int(dim * mlp_ratio), act=_GELU_TANH)
        if position_modulated:
            self.t_embedder = TimestepEmbedder(dim)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, (2 if pre_only else 6) * dim))

    def position_modulation(self, n: int, device) -> Tensor:
        """Context stream: [n, 6 D] modulation from the token positions (independent of the noise level)."""
        return self.adaLN_modulation(self.t_embedder(token_positions(n, device)))

    def pre_attention(self, x: Tensor, mod: Tensor) -> tuple[Tensor, Tensor, Tensor, tuple]:
        """x: [B, L, D]; mod: [B or 1, 1 or L, n_mod * D] -> q, k, v [B, H, L, d] and what post_attention needs."""
        chunks = mod.chunk(2 if self.pre_only else 6, dim=-1)
        q, k, v = self.attn.qkv_heads(modulate(self.norm1(x), chunks[0], chunks[1]))
        return q, k, v, chunks[2:]

    def post_attention(self, x: Tensor, attn: Tensor, chunks: tuple) -> Tensor:
        gate1, shift2, scale2, gate2 = chunks
        x = x + gate1 * self.attn.out(attn)
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


class JointBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, last: bool):
        super().__init__()
        # The last context stream only supplies keys/values; upstream modulates it from the noise level.
        self.context_block = StreamBlock(dim, heads, mlp_ratio, pre_only=last, position_modulated=not last)
        self.x_block = StreamBlock(dim, heads, mlp_ratio)

    def forward(self, context: Tensor, x: Tensor, c: Tensor, context_mod: Tensor | None, mask: Tensor | None):
        """context [B, n, D], x [B, N, D], c [B, D]; context_mod [n, 6D] (None for the last block);
        mask: bool [B, 1, 1 or n + N, n + N] (True = attend) or None."""
        n, ctx_block = context.shape[1], self.context_block
        cmod = ctx_block.adaLN_modulation(c[:, None]) if ctx_block.pre_only else context_mod[None]  # [B, 1, 2D] | [1, n, 6D]
        cq, ck, cv, cchunks = ctx_block.pre_attention(context, cmod)
        xq, xk, xv, xchunks = self.x_block.pre_attention(x, self.x_block.adaLN_modulation(c[:, None]))
        k, v = torch.cat([ck, xk], 2), torch.cat([cv, xv], 2)  # [B, H, n + N, d]
        if ctx_block.pre_only:  # nobody reads the context after the last block: image queries only
            if mask is not None and mask.shape[2] > 1:
                mask = mask[:, :, n:]
            return None, self.x_block.post_attention(x, attend(xq, k, v, mask), xchunks)
        out = attend(torch.cat([cq, xq], 2), k, v, mask)  # [B, n + N, D]
        context = ctx_block.post_attention(context, out[:, :n], cchunks)
        x = self.x_block.post_attention(x, out[:, n:], xchunks)
        return context, x


class FinalLayer(nn.Module):
    def __init__(self, dim: int, patch: int, channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, patch * patch * channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(c[:, None]).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class MMDiT(nn.Module):
    """Shared body of the flow decoder and the renderer: context embedding, joint blocks, final layer."""

    def __init__(self, cfg: SelftokConfig):
        super().__init__()
        d, depth = cfg.decoder_width, cfg.decoder_depth
        self.patch, self.channels = cfg.decoder_patch_size, cfg.latent_channels
        self.context_see_xt = cfg.context_see_xt
        self.t_embedder = TimestepEmbedder(d)
        self.context_embedder = nn.Linear(cfg.token_dim, d)
        self.register_buffer("context_pos_embed", sincos_1d(d, token_positions(cfg.num_tokens)).float()[None])  # [1, K, D]
        self.joint_blocks = nn.ModuleList(JointBlock(d, depth, cfg.mlp_ratio, last=i == depth - 1) for i in range(depth))
        self.final_layer = FinalLayer(d, cfg.decoder_patch_size, cfg.latent_channels)

    def embed_context(self, cond: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Decoder conditioning [B, n, token_dim] -> (context [B, n, D], per-block position modulations [n, 6D]).

        Both are independent of the noise level: compute once, reuse at every sampler step.
        """
        n = cond.shape[1]
        context = self.context_embedder(cond) + self.context_pos_embed[:, :n]
        mods = [blk.context_block.position_modulation(n, cond.device) for blk in self.joint_blocks[:-1]]
        return context, mods

    def attention_mask(self, visible: Tensor | None, n_ctx: int, n_img: int, device) -> Tensor | None:
        """visible: bool [B, n] (True = token visible) or None (all visible) -> SDPA mask or None.

        Image queries see the visible tokens and every image key; token queries see the visible tokens
        and, when context_see_xt, the image keys too (then one key mask [B, 1, 1, n + N] serves every row).
        """
        if self.context_see_xt and visible is None:
            return None
        if visible is None:
            visible = torch.ones(1, n_ctx, dtype=torch.bool, device=device)
        img = torch.ones(visible.shape[0], n_img, dtype=torch.bool, device=device)
        keys = torch.cat([visible, img], 1)[:, None, None, :]  # [B, 1, 1, n + N]
        if self.context_see_xt:
            return keys
        ctx_rows = torch.cat([visible, ~img], 1)[:, None, None, :]
        rows = [ctx_rows.expand(-1, 1, n_ctx, -1), keys.expand(-1, 1, n_img, -1)]
        return torch.cat(rows, 2)  # [B, 1, n + N, n + N]

    def run(self, x: Tensor, c: Tensor, context: Tensor, mods: list[Tensor], visible: Tensor | None, hw: tuple[int, int]) -> Tensor:
        """x: image-stream tokens [B, N, D]; c: [B, D] -> latent-shaped output [B, C, h, w]."""
        mask = self.attention_mask(visible, context.shape[1], x.shape[1], x.device)
        for blk, mod in zip(self.joint_blocks, mods + [None]):
            context, x = blk(context, x, c, mod, mask)
        x = self.final_layer(x, c)  # [B, N, p*p*C]
        h, w = hw[0] // self.patch, hw[1] // self.patch
        return rearrange(x, "b (h w) (p q c) -> b c (h p) (w q)", h=h, w=w, p=self.patch, q=self.patch)


class FlowDecoder(MMDiT):
    """Velocity v(x_t, t | visible tokens) of the rectified flow x_t = t * noise + (1 - t) * x0."""

    def __init__(self, cfg: SelftokConfig):
        super().__init__(cfg)
        d = cfg.decoder_width
        self.pos_max = cfg.decoder_pos_max
        self.patch_embed = nn.Conv2d(cfg.latent_channels, d, cfg.decoder_patch_size, cfg.decoder_patch_size)
        self.register_buffer("pos_embed", sincos_2d(d, cfg.decoder_pos_max)[None])  # [1, P*P, D]; SD3's table upstream

    def forward(self, x_t: Tensor, t: Tensor, context: Tensor, mods: list[Tensor], visible: Tensor | None = None) -> Tensor:
        """x_t: [B, C, h, w], t: [B] in [0, 1] -> velocity [B, C, h, w] (target noise - x0)."""
        x = self.patch_embed(x_t)
        gh, gw = x.shape[-2:]
        x = rearrange(x, "b d h w -> b (h w) d") + _center_crop_table(self.pos_embed, self.pos_max, gh, gw)
        c = self.t_embedder(t.float() * 1000.0)
        return self.run(x, c, context, mods, visible, x_t.shape[-2:])


class Renderer(MMDiT):
    """One-step decoder: learned mask tokens + positions in the image stream, t fixed at 1000."""

    def __init__(self, cfg: SelftokConfig):
        super().__init__(cfg)
        d, grid = cfg.decoder_width, cfg.latent_size // cfg.decoder_patch_size
        self.latent_size = cfg.latent_size
        self.positional_embedding = nn.Parameter(torch.randn(grid * grid, d) * d**-0.5)
        self.mask_token = nn.Parameter(torch.randn(1, 1 if cfg.renderer_shared_mask_token else grid * grid, d) * d**-0.5)

    def forward(self, context: Tensor, mods: list[Tensor], visible: Tensor | None = None) -> Tensor:
        b, n_img = context.shape[0], self.positional_embedding.shape[0]
        x = self.mask_token.expand(b, n_img, -1) + self.positional_embedding  # [B, N, D]
        c = self.t_embedder(torch.full((b,), 1000.0, device=context.device))
        return self.run(x, c, context, mods, visible, (self.latent_size, self.latent_size))
