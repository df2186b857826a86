"""The finished recognizer: a self-contained model folder (`w2vu model`), transcription of new
audio with it (`w2vu transcribe`) and its Hugging Face export (`w2vu export-hf`).

This package sits above the steps: it runs the same library steps as the workflow, in the same
order and with the same settings, so that its output is the pipeline's. No step imports it.
"""
