"""Benchmark: Resguardo against plain WsgiDAV and Apache mod_dav, in one run.

``python -m bench`` (or ``make bench``) starts the three servers on 127.0.0.1,
runs the same workloads against each (alternating, several rounds), verifies
every response and writes ``docs/benchmarks.json``, ``docs/benchmarks.png`` and
``docs/benchmarks.md``. See ``python -m bench --help``.
"""
