"""Ship a trained run: a noise-to-image generator (generator.py) or an image-to-image translator (translator.py)
as a checked, self-describing folder, and that folder as a Hugging Face model repo (hub.py)."""
