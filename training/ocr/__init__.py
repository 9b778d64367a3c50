"""Plate OCR training: data building, training, int8 export and evaluation (needs .venv-train)."""
