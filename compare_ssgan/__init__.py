"""compare_ssgan: self-supervised GANs (SS-GAN, LT-GAN) and their baselines, from gin files."""
