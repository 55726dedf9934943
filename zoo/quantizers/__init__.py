"""Quantizers: one scheme per file, each named after its paper.

Not vector-quantize-pytorch: parity needs each official repo's own numerics (EMA k-means init and
dead-code rules of EnCodec/WavTokenizer, TiTok's VQ, FSQ/LFQ rounding), which its classes do not expose."""

from zoo.quantizers.base import IdentityQuantizer, Quantizer, QuantizerOutput
from zoo.quantizers.dropout import NestedDropout, TailTokenDrop, TokenDropOutput
from zoo.quantizers.fsq import FSQ
from zoo.quantizers.lfq import LFQ
from zoo.quantizers.multiscale import GaussianBottleneck, GaussianOutput, MultiScaleResidualQuantizer, Phi
from zoo.quantizers.vq import ResidualVQ, VectorQuantizer

__all__ = [
    "Quantizer",
    "QuantizerOutput",
    "IdentityQuantizer",
    "VectorQuantizer",
    "ResidualVQ",
    "FSQ",
    "LFQ",
    "MultiScaleResidualQuantizer",
    "Phi",
    "GaussianBottleneck",
    "GaussianOutput",
    "NestedDropout",
    "TailTokenDrop",
    "TokenDropOutput",
]
