"""w2vu: wav2vec-U from raw speech and unpaired text to a speech recognizer."""

__version__ = "0.1.0"
