"""Rasa input channels and the one rendering layer they share."""
