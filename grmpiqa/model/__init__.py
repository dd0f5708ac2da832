"""The network: CLIP backbone, GRMP-IQA prompt head, quality maths, devices and precision."""
