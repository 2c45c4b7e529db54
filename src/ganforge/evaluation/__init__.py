"""Score a run: a generator's samples against its store (generator.py: FID, KID, precision/recall, memorization,
the linear probe), or a translator's outputs against held-out targets (translator.py: PSNR, SSIM and the rest)."""
