"""The domain of Resguardo: spaces, members, plans, files, CFDI and money.

Imports no web framework (neither Flask nor WsgiDAV): the drive (``davserver``)
and the portal (``portal``) are adapters over this package. Its rooms, each
importing only those listed below it (import-linter checks it in ``make test``):

- ``jobs``      what runs over many spaces: crash recovery, backup and restore
- ``commerce``  portal accounts, orders and payments, facturas, notices
- ``access``    spaces and members, who may come in, the status file, paging
- ``cfdi``      CFDI parsing, their index, retention and legal holds, RFCs
- ``files``     a space's folder: names, the file core, quota, trash, versions
- ``core``      settings, database, models, errors, audit, plans, mail, formats
- ``sat``       SAT's catalogues and schemas (data, imports nothing)
"""
