"""Meta pre-training: synthetic distortions, tasks, Reptile-style outer loop."""
