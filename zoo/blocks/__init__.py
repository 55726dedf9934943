"""Shared neural-network blocks. Nothing here imports anything above zoo.blocks."""
