"""Tokenizer families, one per module. The registry (zoo.registry) lists them explicitly."""
