"""Scoring many photos: batching, decoding in parallel, sharding across processes."""
