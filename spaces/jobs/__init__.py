"""What runs over many spaces at once: crash recovery at start-up and the
lease sweep, the daily sweeps (trash and versions expiry, CFDI retention),
backup and restore.

May import every other room of ``spaces``."""
