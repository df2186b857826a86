"""Development helpers that the tests and the benchmarks share: a reference `lmplz`, a small
espeak-ng phone corpus, peak memory. Not part of the installed package; nothing in `w2vu/`
imports it, and `bench/` imports nothing from `tests/` (tests/test_layers.py).
"""
