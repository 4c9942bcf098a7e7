"""Named entities: the model, its scores, the loop, targets and patterns."""
