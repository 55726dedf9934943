"""Quantizers: one scheme per file, each named after its paper."""

from zoo.quantizers.base import IdentityQuantizer, Quantizer, QuantizerOutput

__all__ = ["Quantizer", "QuantizerOutput", "IdentityQuantizer"]
