"""What to train: the named presets (the papers' and seeds' flags) and the default recipe measured best for a
store and a device. Above the model families, whose declared recipes it lists; below training, which asks it."""
