"""Adapting a model to your labels: label tables, training data, the trainer, regularisers."""
