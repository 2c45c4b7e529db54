"""Looking inside a trained generator: latent walks, vector arithmetic, projection of real images."""
