"""Several annotators: consensus (what the loop may learn) and agreement figures."""
