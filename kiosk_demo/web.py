"""HTTP plumbing of the kiosk: JSON in and out, SDK errors as JSON, never a stack trace.

Every handler is wrapped by ``endpoint``: it returns plain data (or a ``Response``) and raises
``ApiError`` or a ``shelfwise`` error; the wrapper turns both into
``{"error": ..., "message": ..., "reason": ...}`` with the right status.

Example:
    >>> error_response(ApiError(400, "BadRequest", "'code' is required", "bad_request")).status_code
    400
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shelfwise import (
    AuthenticationFailed,
    AuthLocked,
    ConsentRequired,
    InvalidBarcode,
    InvalidInput,
    OfferRejected,
    ShelfwiseError,
    UnknownItem,
    UnknownShopper,
)

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the kiosk itself raises (bad request body, no session, staff refused)."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        reason: str = "",
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.error, self.reason = status, error, reason
        self.headers = headers or {}


def jsonable(value: Any) -> Any:
    """SDK results (frozen dataclasses with ``to_dict`` or plain ones) as JSON-ready data.

    Example:
        >>> jsonable({"a": (1, 2)})
        {'a': [1, 2]}
    """
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


def error_response(exc: Exception) -> JSONResponse:
    """Map an SDK or kiosk error to a JSON body with a status, message and reason code."""
    headers: dict[str, str] = {}
    if isinstance(exc, ApiError):
        status, reason, headers = exc.status, exc.reason, exc.headers
    elif isinstance(exc, AuthLocked):
        status, reason = 429, "pin_locked"
        headers = {"Retry-After": str(int(exc.retry_after_s))}
    elif isinstance(exc, AuthenticationFailed):
        status, reason = 403, exc.reason
    elif isinstance(exc, OfferRejected):
        status, reason = 409, exc.reason
    elif isinstance(exc, InvalidBarcode):
        status, reason = 400, exc.reason
    elif isinstance(exc, ConsentRequired):
        status, reason = 403, f"consent_required:{exc.purpose}"
    elif isinstance(exc, UnknownShopper):
        status, reason = 401, "session_ended"
    elif isinstance(exc, UnknownItem):
        status, reason = 404, "unknown_item"
    elif isinstance(exc, InvalidInput):
        status, reason = 400, "invalid_input"
    else:
        status, reason = 500, "error"
    error = exc.error if isinstance(exc, ApiError) else type(exc).__name__
    return JSONResponse(
        {"error": error, "message": str(exc), "reason": reason},
        status_code=status,
        headers=headers,
    )


Handler = Callable[[Request], Awaitable[Any]]


def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler: JSON out, errors translated, never a stack trace to the browser."""

    async def wrapped(request: Request) -> Response:
        try:
            result = await handler(request)
        except (ShelfwiseError, ApiError) as exc:
            return error_response(exc)
        except HTTPException as exc:  # Starlette's own: a malformed multipart body, too many files
            return error_response(
                ApiError(exc.status_code, "BadRequest", exc.detail, "bad_request")
            )
        except Exception:  # the kiosk keeps running whatever one request did
            logger.exception("kiosk request failed: %s %s", request.method, request.url.path)
            return JSONResponse(
                {"error": "InternalError", "message": "something went wrong", "reason": "error"},
                status_code=500,
            )
        if isinstance(result, Response):
            return result
        return JSONResponse(jsonable(result))

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


async def read_json(request: Request) -> dict[str, Any]:
    """The request's JSON object body ({} when empty), read piece by piece, or ``ApiError``.

    The guard in front of the app cuts the body off past its limit while it streams in
    (413); here it must parse as JSON and stay small in shape (400).
    """
    chunks = []
    async for chunk in request.stream():
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "BadRequest", "the request body is not valid JSON", "bad_json") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "BadRequest", "the request body must be a JSON object", "bad_request")
    check_json_shape(data)
    return data


MAX_JSON_DEPTH = 4
MAX_JSON_VALUES = 200


def check_json_shape(data: Any) -> None:
    """``ApiError`` 400 when a JSON body nests deeper than 4 or holds more than 200 values.

    Example:
        >>> check_json_shape({"consents": {"offers": True}})
        >>> check_json_shape({"a": [[[[[1]]]]]})
        Traceback (most recent call last):
        ...
        shelfwise.kiosk_demo.web.ApiError: the JSON body nests deeper than 4 levels
    """
    count = 0
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_JSON_VALUES:
            raise ApiError(
                400, "BadRequest", f"the JSON body holds over {MAX_JSON_VALUES} values", "too_many"
            )
        if isinstance(value, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels",
                    "too_deep",
                )
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)


def text_field(data: dict[str, Any], key: str, limit: int = 200) -> str:
    """A required short text (or number) field, trimmed and cut to ``limit`` characters.

    Example:
        >>> text_field({"code": " 123 "}, "code")
        '123'
    """
    value = data.get(key)
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        raise ApiError(400, "BadRequest", f"'{key}' is required", "bad_request")
    return str(value).strip()[:limit]
