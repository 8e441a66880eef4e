"""Composition root: the ``resguardo`` command and the all-in-one server.
It imports the drive and the portal; nothing imports it back."""
