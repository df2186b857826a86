"""HMM self-training: the lang and graphs, the model, alignment, training, decoding, tuning."""
