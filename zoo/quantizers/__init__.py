"""Quantizers: one scheme per file, each named after its paper."""

from zoo.quantizers.base import IdentityQuantizer, Quantizer, QuantizerOutput
from zoo.quantizers.fsq import FSQ
from zoo.quantizers.lfq import LFQ
from zoo.quantizers.vq import ResidualVQ, VectorQuantizer

__all__ = ["Quantizer", "QuantizerOutput", "IdentityQuantizer", "VectorQuantizer", "ResidualVQ", "FSQ", "LFQ"]
