"""Where weights come from: manifest, Hub cache, file formats, authors' checkpoints, loading."""
