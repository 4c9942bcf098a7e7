"""Text classification: the model, its scoring, the loop, targets and patterns."""
