"""CTC self-training: the model, its data, the trainer, transcription, fine-tuning, rounds."""
