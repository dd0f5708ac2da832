"""From input paths to model-ready batches, shared by scoring and training: sources, datasets,
batching in worker processes, JPEG decoding on the GPU."""
