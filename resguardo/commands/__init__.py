"""The ``resguardo`` command's groups of subcommands, one module per group:
each adds its subcommands to the parser (``add_parsers``) and runs them
(``run``); :mod:`resguardo.cli` puts them together.

- :mod:`~resguardo.commands.space`: ``space``, ``user`` (spaces and their users);
- :mod:`~resguardo.commands.cfdi`: ``cfdi``, ``retention`` (the CFDI index and custody);
- :mod:`~resguardo.commands.operators`: ``admin`` (portal operators, API tokens);
- :mod:`~resguardo.commands.billing`: ``lifecycle``, ``invoice`` (due dates, invoices);
- :mod:`~resguardo.commands.backups`: ``backup``, ``restore``;
- :mod:`~resguardo.commands.auditlog`: ``audit`` (the audit log, read only);
- :mod:`~resguardo.commands.files`: ``trash``, ``versions``, ``quota`` (a space's files).
"""
