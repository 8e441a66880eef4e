"""What runs over many spaces at once: crash recovery at start-up and the
lease sweep, backup and restore.

May import every other room of ``spaces``."""
