"""wav2vec-U / wav2vec-U 2.0 GAN: models (generator, discriminator, JOIN) and losses."""
