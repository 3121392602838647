"""The reference of the API load benchmark: one FastAPI route that returns a fixed job-sized JSON object.

Served the same way as the API (uvicorn, same options); the body comes from `BENCH_BARE_BODY` so that it
is as large as the API's job object.
"""

import json
import os
from typing import Any

from fastapi import FastAPI

BODY: dict[str, Any] = json.loads(os.environ.get("BENCH_BARE_BODY", '{"object": "job"}'))

app = FastAPI()


# A plain `def`, as the API's routes: both run in the thread pool, so the comparison is route work only.
@app.get("/bare")
def bare() -> dict[str, Any]:
    """The fixed object."""
    return BODY
