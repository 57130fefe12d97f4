"""The live model on new data: its score, and when to take it."""
