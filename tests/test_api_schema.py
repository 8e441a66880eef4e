"""schemathesis runs the operator API (/api/v1/) against its own OpenAPI document,
on a real server with a real token: every answer must carry a status the document
lists for that operation, a body that matches its schema, never a 5xx; schema-valid
requests are accepted and schema-violating ones refused.

Bounded to stay under a minute: a few examples per operation and mode, no
deadline (two cores shared with other suites), no example database, and only
127.0.0.1. Mutating operations run too: the server is thrown away afterwards."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from test_api import SMALL

EXAMPLES = 12


def test_every_operation_answers_as_the_openapi_document_says(make_server):
    srv = make_server(SMALL).start()
    assert srv.url.startswith("http://127.0.0.1:")
    token = srv.cli("admin", "token", "create", "schemathesis").stdout.strip().splitlines()[-1]
    # A real space with a member, so generated requests also reach existing rows
    # (not only 404s): PATCH changes its tier and status, members are added to it.
    srv.create_space("acme", "T100K")
    srv.add_user("acme", "ana", "secreto-ana-1")
    schema = schemathesis.openapi.from_url(f"{srv.url}/api/v1/openapi.json", timeout=10)
    schema.config.update(base_url=srv.url)
    # The test sends the real token itself: schemathesis must not generate (or
    # leave out) the Authorization header as if it were a parameter. Requests
    # without or with a wrong token are still made by its ignored_auth check.
    schema.config.generation.update(with_security_parameters=False)
    headers = {"Authorization": f"Bearer {token}"}

    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 9
    for op in operations:
        variants: list[tuple[str, dict]] = [(m.value, {"generation_mode": m})
                                            for m in GenerationMode]
        if "{space}" in op.path:
            variants.append(("positive on acme", {"path_parameters": {"space": "acme"}}))

        for label, kwargs in variants:
            @given(case=op.as_strategy(**kwargs))
            @settings(max_examples=EXAMPLES, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def run(case):
                case.call_and_validate(headers=headers, timeout=30)

            try:
                run()
            except (Exception, BaseExceptionGroup) as exc:  # FailureGroup is an exception group
                failures.append(f"{op.label} ({label}): {exc}")
    assert not failures, "\n\n".join(failures)
    assert "Traceback" not in srv.log.read_text(encoding="utf-8")
