"""The domain of Resguardo: spaces, members, tiers, quota and files.

Imports neither Flask nor WsgiDAV: the drive (``davserver``) and the portal
(``portal``) are adapters over this package.
"""
