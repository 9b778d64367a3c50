"""The plate map: PP-OCRv4's DB text detector fine-tuned to mark whole plates (see train.py)."""
