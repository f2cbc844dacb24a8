"""Schemathesis against the running API's own OpenAPI schema: generated requests (a
bounded number per operation) never get a server error, and every response has a
status code, content type and body that the schema documents.

Against a real `tidings serve` on SQLite with a team, a thread, an update and a write
token for every team, so the changes are exercised too (on this throwaway database: teams
renamed, members removed, keys rotated); the schema does not depend on the engine.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import free_port
from tests.e2e.stack import DOMAIN, Stack, journal_settled, mail, make_stack, wait_for

ALICE = "alice@example.com"
# Path parameters naming things that exist: generated ones almost never do, and the routes
# would answer nothing but 404. Half the requests name these instead.
KNOWN = {"slug": "eng", "email": ALICE}


@pytest.fixture(scope="module")
def api_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    var = tmp_path_factory.mktemp("var")
    stack = make_stack(var, f"sqlite:///{var / 'tidings.db'}", free_port(), free_port())
    stack.start()
    try:
        stack.cli("team", "create", "eng", "--name", "Engineering")
        stack.cli("member", "add", "eng", ALICE, "--name", "Alice")
        stack.send(
            mail(ALICE, f"eng@{DOMAIN}", "Plans", "Shipped the importer."), ALICE, f"eng@{DOMAIN}"
        )
        wait_for(lambda: journal_settled(stack.env["TIDINGS_DATABASE_URL"]), what="the post")
        token = stack.cli("token", "create", "--scope", "write")
        stack.token = token.stdout.strip().splitlines()[-1]
        yield stack
    finally:
        stack.stop()


def test_the_api_answers_as_its_schema_says(api_stack: Stack) -> None:
    schema = schemathesis.openapi.from_url(f"{api_stack.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8  # the schema lists the API, not nothing
    for operation in operations:

        @given(case=operation.as_strategy(), known=st.booleans())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        def answers_as_documented(case: schemathesis.Case, known: bool) -> None:
            if known and case.path_parameters:
                case.path_parameters = {
                    name: KNOWN.get(name, value) for name, value in case.path_parameters.items()
                }
            case.call_and_validate(
                headers={"Authorization": f"Bearer {api_stack.token}"},
                checks=[
                    not_a_server_error,
                    status_code_conformance,
                    content_type_conformance,
                    response_schema_conformance,
                ],
            )

        answers_as_documented()
