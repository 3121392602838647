"""`GET /metrics`: the service's metrics in Prometheus's text format (or OpenMetrics, when asked)."""

import secrets

from fastapi import APIRouter, Request, Response
from prometheus_client.exposition import choose_encoder

from app.api.deps import CHALLENGE, SettingsDep
from app.api.errors import ApiError, error_responses
from app.metrics.registry import ServiceMetrics

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {}, "application/openmetrics-text": {}},
            "description": "Every metric, in the format the `Accept` header prefers.",
        },
        **error_responses(401),
    },
)
def metrics(request: Request, settings: SettingsDep) -> Response:
    """Jobs, queue, workers and HTTP requests, in Prometheus's text format (OpenMetrics when `Accept` asks).

    With `DISTILLERY_METRICS_TOKEN` set, the request needs `Authorization: Bearer <that token>`.
    """
    # The token is read by hand rather than declared: the route is open unless a token is configured.
    if settings.metrics_token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        expected = settings.metrics_token.encode()
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), expected):
            raise ApiError(
                401, "the metrics token is missing or wrong", code="invalid_metrics_token", headers=CHALLENGE
            )
    service_metrics: ServiceMetrics = request.app.state.metrics
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(service_metrics.registry), media_type=content_type)
