"""Property-based fuzzing of every route in the OpenAPI document (schemathesis): no input gets a 5xx.

Schemathesis' pytest fixture loader does not run on pytest 9, so the test walks the operations itself and
drives each one's Hypothesis strategy, 20 generated requests per operation (schema-shaped values: random
tokens, ids up to the 64-bit limit, arbitrary Unicode in every form field and header). Its "negative"
mode is left out: for our all-optional string forms it is mostly unsatisfiable and costs ~80 s of CPU;
malformed ids and bodies are covered by the hand-written tests.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from web_support import add_paper, add_subscriber

from digest.web.app import create_app

EXAMPLES = 20


def test_no_generated_request_causes_a_server_error(settings, db) -> None:
    add_subscriber(db, settings)  # real rows, so generated ids sometimes hit a paper or subscriber
    add_paper(db)
    app = create_app(settings.model_copy(update={"openapi": True}), db)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    failures: list[str] = []
    for operation in operations:
        failures += _fuzz(operation)
    assert failures == []


def _fuzz(operation) -> list[str]:
    failures: list[str] = []

    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        response = case.call()
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path}: {response.status_code}")

    run()
    return failures
