"""Trained model artifacts shipped with the package (written by scripts/train_sentiment.py)."""
