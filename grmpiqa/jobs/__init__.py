"""Whole jobs, as one library call each: :func:`grmpiqa.score` runs a :class:`ScoreJob`."""
