"""Serving a labelling session: the feed, leases, access, request priority, progress, the JSON API and the launcher."""
