"""The digits language: real recordings (Free Spoken Digit Dataset) joined into digit strings."""
