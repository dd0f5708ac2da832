"""Where weights come from: manifest, Hub cache, CLIP backbone, formats, authors' checkpoints."""
