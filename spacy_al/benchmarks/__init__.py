"""The measurements behind spacy_al's claims, one module per benchmark.

``labels`` (label efficiency, ours beside the ``peers``: small-text, modAL and a
random baseline), ``speed`` (latency, update time, scoring throughput, memory)
and ``durability`` (kill -9 trials and a team under load). Each returns its
figures; the ``bench labels``, ``bench speed`` and ``bench durability`` recipes
print them.
"""
