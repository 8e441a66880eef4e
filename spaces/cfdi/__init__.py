"""The CFDI kept: parsing a document (``parse``), the index of a space's
documents (``index``), retention and legal holds (``retention``) and RFCs.

May import: ``spaces.files``, ``spaces.core``, ``spaces.sat``."""
