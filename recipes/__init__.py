"""spacy_al's built-in recipes, installed as ``spacy_al.recipes``.

One recipe (or a few closely related ones) per file, written to be read and copied:
each recipe's docstring is its help text and its steps are commented. The CLI
imports every module here, so a new file registers its recipes by being present.
"""
