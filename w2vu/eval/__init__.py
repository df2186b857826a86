"""Scoring of generated hypotheses: PER/WER, baselines and the supervised probe."""
