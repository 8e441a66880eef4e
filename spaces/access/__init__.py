"""Spaces and their members: creating and removing them, sign-in names and
the brute-force pause, API tokens, the status file in each drive and the
paged reads of the operator API.

May import: ``spaces.cfdi``, ``spaces.files``, ``spaces.core``, ``spaces.sat``."""
