"""``spacy_al.app``: the labelling app (app.py) and its views (app/, installed as
``spacy_al.app.views``).

This file makes the top of the repository a regular package for setuptools'
editable install, whose import hook finds no namespace package inside a regular
one (``spacy_al.app.views`` then fails to import). Keep it empty.
"""
