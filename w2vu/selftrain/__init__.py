"""Self-training on GAN pseudo-labels: HMM, CTC, Kaldi interop (reference section 4)."""
