"""The vocabulary, defined once, without torch: configuration types, the record schema and its
columns, curves' storage rule, exit codes, registries, seed derivation, the FLOP count.

Every other stage imports it; it imports none of them (the layering contract, docs/design.md).
"""
