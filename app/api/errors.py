"""One error shape for every response, `{"error": {code, message, param, type}}`, and its handlers."""

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.field_suggestions import body_model, suggestion

logger = logging.getLogger(__name__)

ErrorType = Literal["user", "system"]
# Path parts FastAPI puts in front of a field's location; a client's param names the field alone.
REQUEST_PARTS = frozenset({"body", "query", "path", "header", "cookie"})
CUSTOM_PARAM_PREFIX = "param:"
DISCRIMINATOR = "type"
DICT_KEY_MARK = "[key]"
STATUS_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_value",
    503: "unavailable",
}


class FieldError(BaseModel):
    """One invalid field of a request."""

    code: str = Field(..., examples=["invalid_value"])
    message: str = Field(..., examples=["Input should be greater than 0"])
    param: str | None = Field(None, examples=["training.learning_rate"])


class ErrorFields(BaseModel):
    """What went wrong: a machine code, a sentence, the field at fault and whose fault it is."""

    code: str = Field(..., examples=["not_found"])
    message: str = Field(..., examples=["no job 'job_1a2b3c' exists"])
    param: str | None = Field(
        None, description="The request field at fault, dotted.", examples=["method.alpha"]
    )
    type: ErrorType = Field(..., description="user: fix the request; system: retry later or report it.")


class ErrorDetail(ErrorFields):
    """A request's error: its fields, and for a request that failed validation every invalid field."""

    errors: list[FieldError] | None = Field(
        None,
        description="Validation errors (422) only: every invalid field of the request, the first one being "
        "the error's own `code`, `message` and `param`.",
    )


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


class ApiError(StarletteHTTPException):
    """An error answered with the standard shape; a subclass of HTTPException so body parsing re-raises it."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status_code, detail=message, headers=headers)
        self.message = message
        self.code = code or STATUS_CODES.get(status_code, "error")
        self.param = param


class NotFound(ApiError):
    """A resource that does not exist, or belongs to another tenant."""

    def __init__(self, kind: str, resource_id: str) -> None:
        super().__init__(404, f"no {kind} '{resource_id}' exists", code="not_found")


class Conflict(ApiError):
    """The request fits no longer the resource's current state."""

    def __init__(self, message: str, *, code: str = "conflict", param: str | None = None) -> None:
        super().__init__(409, message, code=code, param=param)


class InvalidField(ApiError):
    """A well-formed request whose field refers to something unusable (422 with the field)."""

    def __init__(self, param: str, message: str, *, code: str = "invalid_value") -> None:
        super().__init__(422, message, code=code, param=param)


def error_body(
    *,
    code: str,
    message: str,
    param: str | None = None,
    type: ErrorType = "user",
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON body of an error; `errors` lists every invalid field of a request that failed validation."""
    detail = {"code": code, "message": message, "param": param, "type": type}
    return {"error": detail if errors is None else {**detail, "errors": errors}}


def error_response(
    status_code: int,
    *,
    code: str,
    message: str,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An error response; 5xx are the system's fault, everything else the request's."""
    kind: ErrorType = "system" if status_code >= 500 else "user"
    body = error_body(code=code, message=message, param=param, type=kind)
    return JSONResponse(body, status_code=status_code, headers=headers)


ERROR_DESCRIPTIONS = {
    400: "Bad request: a body that is not UTF-8 JSON, or a malformed upload.",
    401: "Missing or invalid API key.",
    404: "No such resource for this API key's tenant.",
    409: "The resource's current state does not allow this.",
    413: "The request body or the upload is larger than the service accepts.",
    415: "The upload is not a supported dataset format.",
    422: "A field is invalid, or a pagination cursor (`after`) names no item; `param` names the field.",
    500: "An unexpected failure of the service.",
    503: "A dependency is unreachable (`database_unavailable`, `store_unavailable`), or the API is saturated "
    "for now (`database_busy`, `server_busy`); retry after `Retry-After` seconds.",
}


# One typical body per status, so that each status of a route's documentation shows its own.
ERROR_EXAMPLES: dict[int, dict[str, Any]] = {
    400: error_body(code="invalid_json", message="the body is not valid UTF-8 JSON"),
    401: error_body(code="unauthorized", message="missing or invalid API key"),
    404: error_body(code="not_found", message="no job 'job_3f9a1b2c3d4e5f6a7b8c9d0e' exists"),
    409: error_body(code="conflict", message="job 'job_3f9a1b2c3d4e5f6a7b8c9d0e' already succeeded"),
    413: error_body(code="payload_too_large", message="the upload is larger than 1073741824 bytes"),
    415: error_body(code="unsupported_media_type", message="the upload is not JSONL, CSV or Parquet"),
    422: error_body(
        code="invalid_value",
        message="Input should be greater than 0 "
        "(also: training.epochs: Input should be greater than or equal to 1)",
        param="training.learning_rate",
        errors=[
            {
                "code": "invalid_value",
                "message": "Input should be greater than 0",
                "param": "training.learning_rate",
            },
            {
                "code": "invalid_value",
                "message": "Input should be greater than or equal to 1",
                "param": "training.epochs",
            },
        ],
    ),
    500: error_body(
        code="internal_error", message="an unexpected error occurred; it was logged", type="system"
    ),
    503: error_body(
        code="database_unavailable", message="the database is unreachable; retry later", type="system"
    ),
}


def error_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for a route: each status with the error model, a description and an example."""
    return {
        code: {
            "model": ErrorResponse,
            "description": ERROR_DESCRIPTIONS[code],
            "content": {"application/json": {"example": ERROR_EXAMPLES[code]}},
        }
        for code in status_codes
    }


def field_param(error: dict[str, Any], body: Any) -> str | None:
    """The dotted field of a validation error, as a client wrote it."""
    if error.get("type") == "json_invalid":
        return None
    location = list(error.get("loc", ()))
    if location and location[0] in REQUEST_PARTS:
        location = location[1:]
    if DICT_KEY_MARK in location:
        # A bad key is located at the key itself (`metadata.<key>.[key]`): name the object, not the key.
        location = location[: max(0, location.index(DICT_KEY_MARK) - 1)]
    parts = _without_union_tags(location, body)
    kind = str(error.get("type", ""))
    if kind.startswith(CUSTOM_PARAM_PREFIX):
        parts += kind.removeprefix(CUSTOM_PARAM_PREFIX).split(".")
    return ".".join(str(part) for part in parts) or None


def _without_union_tags(location: Sequence[Any], body: Any) -> list[Any]:
    """Drop the tags pydantic inserts for discriminated unions (`method.response.alpha` -> `method.alpha`).

    Every discriminated union of the job spec is keyed by `type`, so a tag is recognised by walking the
    submitted body: a location part that is not a key of the object there but equals its `type`.
    """
    node, kept = body, []
    for part in location:
        if isinstance(node, dict) and part not in node and node.get(DISCRIMINATOR) == part:
            continue
        kept.append(part)
        node = _child(node, part)
    return kept


def _child(node: Any, part: Any) -> Any:
    """The value at `part` of a JSON object or array, or None when there is none."""
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _validation_code(kind: str) -> str:
    return {
        "missing": "missing_field",
        "extra_forbidden": "unknown_field",
        "json_invalid": "invalid_json",
    }.get(kind, "invalid_value")


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if not errors:
        return error_response(422, code="invalid_value", message="the request is invalid")
    model = body_model(request.scope.get("route"))
    fields = [
        {
            "code": _validation_code(str(error.get("type", ""))),
            "message": _message(error, model),
            "param": field_param(error, exc.body),
        }
        for error in errors
    ]
    first = fields[0]
    extra = [f"{field['param'] or 'request'}: {field['message']}" for field in fields[1:]]
    message = str(first["message"]) + (f" (also: {'; '.join(extra[:5])})" if extra else "")
    body = error_body(code=str(first["code"]), message=message, param=first["param"], errors=fields)
    return JSONResponse(body, status_code=422)


def _message(error: dict[str, Any], model: Any) -> str:
    """pydantic's message, with the closest accepted name for an unknown field."""
    message = str(error.get("msg", "invalid value"))
    if error.get("type") == "extra_forbidden" and model is not None:
        hint = suggestion(model, list(error.get("loc", ())))
        return f"{message}: {hint}" if hint else message
    return message


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(
        exc.status_code, code=exc.code, message=exc.message, param=exc.param, headers=exc.headers
    )


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = STATUS_CODES.get(exc.status_code, "error")
    return error_response(exc.status_code, code=code, message=str(exc.detail), headers=exc.headers)


async def _on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, code="internal_error", message="an unexpected error occurred; it was logged")


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error, including unexpected ones, with the standard shape."""
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected_error)
