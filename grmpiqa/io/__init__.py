"""Files in and out: finding photos, decoding, model input, output tables, resume, atomic writes."""
