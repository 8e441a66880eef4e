"""Spaces and their members: creating and removing them, sign-in names and
the brute-force pause, API tokens, the status file in each drive, the paged
reads of the operator API, and the file core as every door gets it
(``files.space_files``: ``SpaceFiles`` with the CFDI policies in their order).

May import: ``spaces.cfdi``, ``spaces.files``, ``spaces.core``, ``spaces.sat``."""
