"""The score catalogue: every photo is scored once per model, later commands reuse it.

One SQLite file (``$GRMPIQA_CATALOGUE``, else ``catalogue.sqlite`` in grmpiqa's
cache folder) remembers, per photo content and model key, the score and, when
they were computed, the burst signals and image embedding. :mod:`.store` holds
the file and its safety rules, :mod:`.lookup` splits a run's photos into those
known and those left to score, and stores what gets scored. Torch-free.
"""
