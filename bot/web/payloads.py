"""Request bodies → typed values.

A body of the wrong shape or type is 400 (the caller's integration is broken); a well-formed value a
loyalty rule refuses (zero total, three decimals, an absurd amount) is 422.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Dict, List, Mapping, Optional, Union

from aiohttp import web

from bot.advocacy.fingerprints import ADDRESS_FIELDS, normalize_ip
from bot.identity import CustomerRef
from bot.identity.customers import CUSTOMER_KEYS, MAX_ID
from bot.loyalty.ledger import LedgerError
from bot.loyalty.orders import LineInput, Tracking, check_amount
from bot.shared.text import has_lone_surrogate
from bot.web.errors import ApiError, bad_request, unprocessable

MAX_LINES = 500
# A store's clock may run a little ahead of ours; an order much later than now is a wrong time zone or
# a forged date (it would count toward no tier term until then).
FUTURE_TOLERANCE = timedelta(hours=1)
# Earlier is a zero or mis-parsed date on the store's side (and tier terms a year before year 1 overflow).
EARLIEST_MOMENT = datetime(2000, 1, 1, tzinfo=timezone.utc)
MAX_ADDRESS_CHARS = 500


async def json_object(request: web.Request) -> Dict[str, Any]:
    """The body as a JSON object. Over client_max_size, read() raises 413 before parsing."""
    return parse_json_object(await request.read())


def parse_json_object(raw: bytes) -> Dict[str, Any]:
    if not raw.strip():
        raise bad_request("the body must be a JSON object")
    try:
        # Numbers with a fraction become Decimal straight from their text (no float rounding), and the
        # non-standard NaN / Infinity that Python's json would accept are refused.
        data = json.loads(raw, parse_float=Decimal, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise ApiError(400, "malformed_json", f"the body is not valid JSON ({reason})") from None
    if not isinstance(data, dict):
        raise bad_request("the body must be a JSON object")
    _refuse_lone_surrogates(data)
    return data


def _refuse_lone_surrogates(data: Any) -> None:
    """400 for a string (value or key, at any depth) holding a lone UTF-16 surrogate: valid JSON, but no
    database can store it (it was a 500 on the first write)."""
    pending: List[Any] = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if has_lone_surrogate(key):
                    raise bad_request(f"a key holds a lone UTF-16 surrogate ({_shown(key)}): not valid Unicode text")
                pending.append(item)
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str) and has_lone_surrogate(value):
            raise bad_request(f"a value holds a lone UTF-16 surrogate ({_shown(value)}): not valid Unicode text")


def _shown(value: str) -> str:
    return ascii(value[:40])


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def text(body: Mapping[str, Any], name: str, *, max_length: int) -> str:
    value = optional_text(body, name, max_length=max_length)
    if value is None:
        raise bad_request(f"{name} is required")
    return value


def optional_text(body: Mapping[str, Any], name: str, *, max_length: int) -> Optional[str]:
    """A string field, stripped; None when absent or blank."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a string")
    return _checked(value.strip(), name, max_length) or None


def identifier(body: Mapping[str, Any], name: str, *, max_length: int = 64) -> str:
    """A store's id: a string, or a whole number (several platforms send numeric ids)."""
    value = body.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"{name} is required (a string of 1-{max_length} characters)")
    return _checked(value.strip(), name, max_length)


def _checked(value: str, name: str, max_length: int) -> str:
    if len(value) > max_length:
        raise bad_request(f"{name} is longer than {max_length} characters")
    if "\x00" in value:  # PostgreSQL refuses NUL in text: a 500 if it got that far
        raise bad_request(f"{name} must not contain NUL characters")
    if has_lone_surrogate(value):  # a query string's; a body's are refused as it is parsed
        raise bad_request(f"{name} holds a lone UTF-16 surrogate: not valid Unicode text")
    return value


def optional_identifier(body: Mapping[str, Any], name: str, *, max_length: int = 64) -> Optional[str]:
    return None if body.get(name) is None else identifier(body, name, max_length=max_length)


def number(value: Any, name: str) -> Decimal:
    """A JSON number or numeric string as an exact Decimal; anything else (bool, NaN, text) is 400."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise bad_request(f'{name} must be an amount such as "59.00"')
    try:
        result = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise bad_request(f'{name} must be an amount such as "59.00", not {value!r}') from None
    if not result.is_finite():
        raise bad_request(f"{name} must be a finite amount")
    return result


def amount(body: Mapping[str, Any], name: str) -> Decimal:
    """A money amount the store charged or refunded: positive, two decimals at most, not absurd (422)."""
    if body.get(name) is None:
        raise bad_request(f"{name} is required")
    try:
        return check_amount(name, number(body[name], name))
    except LedgerError as error:
        raise unprocessable(str(error)) from None


def basket_total(value: Any, name: str) -> Decimal:
    """An order total to check a code against: zero is a possible basket, a negative one is not."""
    result = number(value, name)
    if result < 0:
        raise bad_request(f"{name} must not be negative")
    return result


def currency(body: Mapping[str, Any], name: str = "currency") -> str:
    value = optional_currency(body, name)
    if value is None:
        raise bad_request(f"{name} is required")
    return value


def optional_currency(body: Mapping[str, Any], name: str = "currency") -> Optional[str]:
    value = optional_text(body, name, max_length=3)
    if value is not None and (len(value) != 3 or not value.isalpha()):
        raise bad_request(f"{name} must be a 3-letter ISO code such as USD")
    return value.upper() if value else None


def moment(body: Mapping[str, Any], name: str, now: datetime) -> datetime:
    """An ISO-8601 time with its zone (a naive one is ambiguous: 400), not in the future; default now."""
    value = body.get(name)
    if value is None:
        return now
    if not isinstance(value, str):
        raise bad_request(f"{name} must be an ISO-8601 date and time string")
    raw = value.strip()
    # Python 3.10's fromisoformat does not read the common "Z" suffix.
    if raw[-1:] in ("Z", "z"):
        raw = raw[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise bad_request(f"{name} {value!r} is not an ISO-8601 date and time") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise bad_request(f"{name} {value!r} needs a time zone, e.g. 2026-06-15T10:00:00+00:00")
    try:
        parsed = parsed.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01T00:00+05:00 has no UTC equivalent
        raise bad_request(f"{name} {value!r} is out of range") from None
    if parsed > now + FUTURE_TOLERANCE:
        raise unprocessable(f"{name} {value} is in the future")
    if parsed < EARLIEST_MOMENT:
        raise unprocessable(f"{name} {value} is before {EARLIEST_MOMENT:%Y-%m-%d}")
    return parsed


def birthday(body: Mapping[str, Any], name: str = "birthday") -> Optional[date]:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a date string such as 1990-04-23")
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise bad_request(f"{name} {value!r} is not a date such as 1990-04-23") from None


def customer_ref(body: Mapping[str, Any], name: str = "customer") -> CustomerRef:
    value = body.get(name)
    if not isinstance(value, dict):
        raise bad_request(f'{name} is required: {{"id": 5}}, {{"email": "…"}} or {{"external_id": "…"}}')
    given = [key for key in CUSTOMER_KEYS if value.get(key) is not None]
    if len(given) != 1:
        raise bad_request(f"{name} needs exactly one of {', '.join(CUSTOMER_KEYS)}")
    key = given[0]
    if key == "id":
        if isinstance(value["id"], bool) or not isinstance(value["id"], int) or not 1 <= value["id"] <= MAX_ID:
            raise bad_request(f"{name}.id must be a whole number from 1 to {MAX_ID}")
        return CustomerRef("id", value["id"])
    if key == "email":
        return CustomerRef("email", text(value, "email", max_length=320).lower())
    return CustomerRef("external_id", identifier(value, "external_id"))


def tracking(body: Mapping[str, Any], name: str = "tracking") -> Optional[Tracking]:
    """A fulfilment's {"company"?, "number"?, "url"?}; None when absent."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_request(f'{name} must be an object: {{"company"?, "number"?, "url"?}}')
    found = Tracking(
        company=optional_text(value, "company", max_length=100),
        number=optional_text(value, "number", max_length=100),
        url=optional_text(value, "url", max_length=500),
    )
    if found.url is not None and not found.url.startswith(("https://", "http://")):
        raise bad_request(f"{name}.url must be an http(s) address")
    return found if found != Tracking() else None


def order_lines(body: Mapping[str, Any], name: str = "lines") -> List[LineInput]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request(f"{name} must be a list")
    if len(value) > MAX_LINES:
        raise unprocessable(f"an order of more than {MAX_LINES} lines is refused")
    lines = []
    for index, item in enumerate(value, start=1):
        where = f"{name}[{index}]"
        if not isinstance(item, dict):
            raise bad_request(f"{where} must be an object")
        quantity = item.get("quantity", 1)
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise bad_request(f"{where}.quantity must be a whole number")
        if item.get("unit_price") is None:
            raise bad_request(f"{where}.unit_price is required")
        lines.append(
            LineInput(
                title=text(item, "title", max_length=255),
                quantity=quantity,
                # Range and decimals are the order service's rules (422); a free gift's price is 0.
                unit_price=number(item["unit_price"], f"{where}.unit_price"),
                sku=optional_text(item, "sku", max_length=64),
            )
        )
    return lines


def text_list(body: Mapping[str, Any], name: str, *, max_items: int, max_length: int) -> List[str]:
    """A list of strings (e.g. an order's discount codes), blanks dropped; [] when absent."""
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise bad_request(f"{name} must be a list of strings")
    if len(value) > max_items:
        raise bad_request(f"{name} has {len(value)} items; at most {max_items} are accepted")
    return [_checked(item.strip(), f"{name}[{index}]", max_length)
            for index, item in enumerate(value, start=1) if item.strip()]


def shipping_address(body: Mapping[str, Any], name: str = "shipping_address") -> Union[None, str, Dict[str, str]]:
    """An address as one string or as an object of ADDRESS_FIELDS (strings), at most MAX_ADDRESS_CHARS in all."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return _checked(value.strip(), name, MAX_ADDRESS_CHARS) or None
    if not isinstance(value, dict):
        raise bad_request(f"{name} must be an object ({', '.join(ADDRESS_FIELDS)}) or a string")
    fields = {}
    for field in ADDRESS_FIELDS:
        part = optional_text(value, field, max_length=MAX_ADDRESS_CHARS)
        if part is not None:
            fields[field] = part
    if not fields:
        raise bad_request(f"{name} needs at least one of {', '.join(ADDRESS_FIELDS)}")
    if sum(len(part) for part in fields.values()) > MAX_ADDRESS_CHARS:
        raise bad_request(f"{name} is longer than {MAX_ADDRESS_CHARS} characters")
    return fields


def ip_address(body: Mapping[str, Any], name: str) -> Optional[str]:
    """An IPv4 or IPv6 address (the shopper's, as the store saw it); 400 for anything else."""
    value = optional_text(body, name, max_length=64)
    if value is not None and normalize_ip(value) is None:
        raise bad_request(f"{name} must be an IPv4 or IPv6 address")
    return value


def query_customer(query: Mapping[str, str]) -> Optional[CustomerRef]:
    """A customer named in a query string: ?customer_id=5 or ?customer_email=…; None when neither."""
    given = [key for key in ("customer_id", "customer_email") if query.get(key, "").strip()]
    if len(given) > 1:
        raise bad_request("give customer_id or customer_email, not both")
    if not given:
        return None
    if given[0] == "customer_email":
        return CustomerRef("email", text(query, "customer_email", max_length=320).lower())
    raw = query["customer_id"].strip()
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_ID:
        raise bad_request(f"customer_id must be a whole number from 1 to {MAX_ID}")
    return CustomerRef("id", int(raw))
