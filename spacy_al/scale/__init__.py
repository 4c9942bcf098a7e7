"""Scaling out: the pool scored on a Dask cluster (``--dask ADDRESS|local:N``).

``cluster`` connects to a scheduler or starts a local cluster (dask is imported
there only, when one is opened); ``source`` splits a JSONL file into byte
ranges and reads records by offset; ``pool`` holds the examples as keys,
offsets and done marks (``OffsetPool``); ``scoring`` ships the model and scores
partitions on the workers with the same picks as in one process.
"""
