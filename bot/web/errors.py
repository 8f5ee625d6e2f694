"""Every error of the web app is JSON `{"error": <code>, "detail": <text>}` with a fitting status.

Handlers raise ApiError; service errors (LedgerError, IdentityError, CodeRefused) are translated here,
in one place, so every endpoint answers the same refusal the same way.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from aiohttp import web

from bot.db import RETRY_AFTER_SECONDS
from bot.identity import CustomerConflict, IdentityError
from bot.loyalty.ledger import Conflict, LedgerError, NotFound
from bot.loyalty.orders import UnknownOrder
from bot.loyalty.rewards import CodeRefused


class ApiError(Exception):
    """An answer other than success: status, a stable machine-readable code and a readable detail."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        *,
        extra: Optional[Mapping[str, Any]] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        body: Dict[str, Any] = {"error": self.error, "detail": self.detail, **self.extra}
        return web.json_response(body, status=self.status, headers=self.headers)


def database_down() -> ApiError:
    """The database is down, refusing connections or read-only: try again shortly (not a bug of the caller's)."""
    return ApiError(503, "database_unavailable", "the database is not available right now; retry shortly",
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def bad_request(detail: str) -> ApiError:
    return ApiError(400, "invalid_request", detail)


def unprocessable(detail: str) -> ApiError:
    return ApiError(422, "unprocessable", detail)


# A refused code: the status tells the store's checkout what to do without reading the reason.
_CODE_REFUSAL_STATUS = {
    "unknown": 404,  # no such code
    "used": 409,  # someone else's order got it first
    "expired": 410,  # will never be valid again
    "cancelled": 410,
    "below_minimum": 422,  # valid code, wrong basket
    "wrong_currency": 422,
    "invalid_order": 400,
    "not_first_order": 422,  # a friend's offer, for a customer who already ordered or used one
    "own_code": 422,  # a friend's offer, for the advocate who shared it
}


def code_refused(refused: CodeRefused) -> ApiError:
    return ApiError(
        _CODE_REFUSAL_STATUS.get(refused.reason, 422),
        "code_refused",
        str(refused),
        extra={"code": refused.code, "valid": False, "reason": refused.reason},
    )


def from_service_error(error: Exception) -> Optional[ApiError]:
    """The API answer for a service refusal; None for anything that is not one (a bug: 500)."""
    if isinstance(error, CodeRefused):
        return code_refused(error)
    if isinstance(error, (Conflict, CustomerConflict)):
        return ApiError(409, "conflict", str(error))
    if isinstance(error, UnknownOrder):
        return ApiError(404, "unknown_order", str(error))
    if isinstance(error, NotFound):
        return ApiError(404, "not_found", str(error))
    if isinstance(error, LedgerError):
        return unprocessable(str(error))
    if isinstance(error, IdentityError):
        return unprocessable(str(error))
    return None


def from_http_exception(error: web.HTTPException, max_body_bytes: int) -> ApiError:
    """aiohttp's own refusals (no route, wrong method, body too large) in the same JSON shape."""
    if isinstance(error, web.HTTPRequestEntityTooLarge):
        return ApiError(
            413, "payload_too_large", f"the request body is larger than the {max_body_bytes} bytes this server accepts"
        )
    code = (error.reason or "error").lower().replace(" ", "_")
    headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
    return ApiError(error.status, code, error.reason or "error", headers=headers)
