"""The operator REST API under ``/api/v1/`` (JSON, bearer tokens).

Every answer is JSON; every error is ``{"error": {"code", "message"}}`` with a
Spanish message and a status the OpenAPI document lists for that operation
(400, 401, 403, 404, 409, 413, 415, 503; 405 for a method a path does not
have, with ``Allow``), never a traceback. The OpenAPI document
(``/api/v1/openapi.json``) is built from the same route table that dispatches,
and the request bodies, query and path parameters are checked against the very
schemas it publishes, so the document and the behaviour cannot drift apart.

Lists are pages: ``?limit=`` (1-500, default 50) and ``?offset=``; the answer is
``{"items": [...], "total", "limit", "offset", "next_offset"}``.

The package, by responsibility:

- :mod:`resguardo.api.app`: the WSGI app (:func:`~resguardo.api.app.make_api`): bearer
  tokens and their pause, dispatch on the route table, every error as JSON;
- :mod:`resguardo.api.routes`: the route table and the OpenAPI document built from it;
- :mod:`resguardo.api.handlers`: the operations, by resource (spaces, members, CFDI);
- :mod:`resguardo.api.schemas`: the JSON Schemas the document publishes;
- :mod:`resguardo.api.validation`: those schemas enforced on bodies, query and path
  parameters (jsonschema), with Spanish 400s.
"""
