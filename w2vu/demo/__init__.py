"""The demo language: English speech synthesised with espeak-ng from a bundled book."""
