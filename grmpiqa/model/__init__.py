"""The network: GRMP prompts on a CLIP backbone, quality maths, devices and precision."""
