"""The training kernel shared by every trainer (GAN, CTC, probe)."""
