"""Sharing a finished run: ``export`` (one file for other tools) and ``hub`` (push to the Hugging Face Hub)."""
