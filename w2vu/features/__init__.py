"""Acoustic features: SSL backbones (wav2vec 2.0 and relatives), MFCC, clustering, pooling.

Submodules are imported on demand (`from w2vu.features.backbone import load_backbone`), so that
the MFCC path and the CLI start without importing transformers.
"""
