"""Audio stages: inventory, convert, VAD, trim and manifest."""

SAMPLE_RATE = 16000
