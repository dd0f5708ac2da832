"""Photo workflow on top of scores: culling bursts, XMP ratings, selection, summaries."""
