"""spacy_al: spaCy-native active learning."""

__version__ = "0.1.0"
