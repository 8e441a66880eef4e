"""schemathesis runs the operator API (/api/v1/) against its own OpenAPI document,
on a real server with a real token: every answer must carry a status the document
lists for that operation, a body that matches its schema, never a 5xx; schema-valid
requests are accepted and schema-violating ones refused.

Then a stateful run follows the document's links (create, then use what was
created). Bounded to stay under a minute: a few examples per operation and mode, no
deadline (two cores shared with other suites), no example database, and only
127.0.0.1. Mutating operations run too: the server is thrown away afterwards."""

from __future__ import annotations

import itertools
import re

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from test_api import SMALL

EXAMPLES = 12


#: The fuzzer sends bad tokens on purpose (its ignored_auth check): it must not be
#: paused like a token guesser (tests/test_api.py checks the pause).
PATIENT = "[auth]\nmax_failures = 100000\n"


def test_every_operation_answers_as_the_openapi_document_says(make_server):
    srv = make_server(SMALL + PATIENT).start()
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

    # Stateful: follow the document's links (create a space, then show, change, list
    # and add members to it; add a member, then remove it) in generated sequences,
    # on a server of their own. Hypothesis replays choices and insists that the same
    # choices draw the same data, so what a sequence sees must not depend on what
    # earlier sequences left behind: every space it creates gets a fresh name.
    srv2 = make_server(SMALL + PATIENT).start()
    token2 = srv2.cli("admin", "token", "create", "stateful").stdout.strip().splitlines()[-1]
    schema = schemathesis.openapi.from_url(f"{srv2.url}/api/v1/openapi.json", timeout=10)
    schema.config.update(base_url=srv2.url)
    schema.config.generation.update(with_security_parameters=False)
    created = itertools.count()

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case):
            body = case.body
            if case.method == "POST" and case.path == "/api/v1/spaces" and \
                    isinstance(body, dict) and isinstance(body.get("name"), str) and \
                    re.fullmatch(r"[a-z0-9][a-z0-9_-]{1,62}", body["name"]):
                # Only a valid name is renamed, into another valid one: a request
                # meant to be refused stays refused.
                body["name"] = f"{body['name'][:50]}-s{next(created)}"

        def get_call_kwargs(self, case):
            return {"headers": {"Authorization": f"Bearer {token2}"}, "timeout": 30}

    try:
        # No shrinking: it replays sequences against a server they already changed,
        # and it costs more time than the run; a failure is reported as found.
        Workflow.run(settings=settings(max_examples=8, stateful_step_count=6,
                                       deadline=None, database=None,
                                       phases=[Phase.explicit, Phase.generate],
                                       suppress_health_check=list(HealthCheck)))
    except (Exception, BaseExceptionGroup) as exc:
        failures.append(f"stateful: {exc}")
    assert not failures, "\n\n".join(failures)
    assert "Traceback" not in srv.log.read_text(encoding="utf-8")
    log = srv2.log.read_text(encoding="utf-8")
    assert "Traceback" not in log
    # The links were followed: spaces the sequences created were then used.
    assert re.search(r"api: [A-Z]+ '/api/v1/spaces/[^/']+-s\d+[^']*' by token stateful "
                     r"from \S+ -> 20[01]", log), "no stateful sequence followed a link"
