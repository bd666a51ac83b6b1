"""schemathesis against the app's own OpenAPI schema: whatever the schema allows, the app answers as documented.

Bounded (a few dozen generated cases per operation, derandomized) so that it stays fast. What the
schema cannot say (an uploaded image must show a digit; values up to 1 with range "0-1") makes some
schema-valid generated requests 422, so "positive data accepted" is not among the checks for generated
cases; every other schemathesis check is. A request of each documented kind then reaches a 200 and
passes every check.
"""

import base64
import io
import warnings

import pytest

pytest.importorskip("fastapi", reason="the web extra (fastapi) is not installed")
schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")

from hypothesis import HealthCheck, settings  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

import digitnet  # noqa: E402
from digitnet.web.app import create_app  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app({"seed": digitnet.load("seed")}))

@schema.parametrize()
@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_the_api_answers_as_its_schema_says(case):
    response = case.call()
    assert response.status_code < 500, response.text[:300]
    case.validate_response(response, excluded_checks=[positive_data_acceptance])


def drawn_png() -> bytes:
    img = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(img).line([(145, 40), (135, 240)], fill=0, width=28)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("media_type", ["application/json 28x28", "application/json 784 0-1",
                                        "application/json image", "multipart/form-data", "image/png"])
def test_documented_examples_reach_a_200_and_pass_every_check(media_type, mnist):
    """One request of each kind the schema documents, checked by schemathesis (positive data accepted too)."""
    img = mnist.test.images[0]
    bodies = {"application/json 28x28": {"pixels": img.tolist(), "model": "seed", "top_k": 2},
              "application/json 784 0-1": {"pixels": (img.ravel() / 255).tolist(), "range": "0-1"},
              "application/json image": {"image": "data:image/png;base64," + base64.b64encode(drawn_png()).decode(),
                                         "top_k": 3, "split": False},
              "multipart/form-data": {"file": drawn_png(), "top_k": 3},
              "image/png": drawn_png()}
    case = schema["/api/predict"]["POST"].Case(body=bodies[media_type], media_type=media_type.split()[0])
    response = case.call()
    assert response.status_code == 200, response.text[:300]
    case.validate_response(response)
    label = response.json()["label"]
    pixels = media_type.startswith("application/json") and not media_type.endswith("image")
    assert label == (int(mnist.test.labels[0]) if pixels else 1)
