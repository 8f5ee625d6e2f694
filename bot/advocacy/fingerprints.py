"""Fingerprints for the referral fraud rules: emails, shipping addresses and networks in comparable form.

An address or an IP address is personal data we only need to compare, never to read back, so both are
stored as keyed hashes (HMAC-SHA256). The key is FINGERPRINT_SECRET, or else a random key made once in
`<data_dir>/fingerprint.key`: without the key a leaked hash cannot be tested against guessed addresses
(the IPv4 space is small enough to hash in full). Changing or losing the key makes earlier hashes
unmatchable — the self-referral checks then only see orders recorded after the change.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import threading
import unicodedata
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Union

from bot.settings import Settings

KEY_FILE_NAME = "fingerprint.key"
_KEY_BYTES = 32
# One household is one network: an IPv6 provider hands each customer a /64 (or larger) prefix, and the
# host part changes every few hours (privacy extensions), so only the prefix identifies the household.
IPV6_HOUSEHOLD_PREFIX = 64

Address = Union[Mapping[str, Any], str]

# The fields of a structured shipping address (the store API takes these; other keys a platform sends, such
# as Shopify's name, phone or latitude, are ignored).
ADDRESS_FIELDS = ("address1", "address2", "city", "province", "zip", "country")
# Compared: the fields that say where it is. Province and country are left out on purpose: stores send them
# as names or codes ("California" / "CA", "United States" / "US"), and the zip already pins the region.
_COMPARED_FIELDS = tuple(name for name in ADDRESS_FIELDS if name not in ("province", "country"))

# Spellings of one word → one form (USPS abbreviations), so "Street" and "st." compare equal.
_ABBREVIATIONS = {
    "street": "st", "str": "st", "avenue": "ave", "av": "ave", "road": "rd", "boulevard": "blvd",
    "drive": "dr", "lane": "ln", "court": "ct", "place": "pl", "terrace": "ter", "highway": "hwy",
    "parkway": "pkwy", "square": "sq", "circle": "cir", "crescent": "cres", "mount": "mt", "saint": "st",
    "north": "n", "south": "s", "east": "e", "west": "w",
    "northeast": "ne", "northwest": "nw", "southeast": "se", "southwest": "sw",
}
# Words that only announce a unit number ("Apt 4", "Suite 4", "#4", "No. 4"). A run of them is dropped when a
# number follows, so "Apt 4", "Apt #4", "Apt No. 4", "Unit 4", "#4" and a bare "4" after the street all
# read the same.
_UNIT_WORDS = {"apartment", "apt", "unit", "suite", "ste", "flat", "no", "number", "num", "room", "rm", "#"}
_TOKEN = re.compile(r"#|[^\W_]+")
_FUSED_UNIT = re.compile(r"^(apartment|apt|unit|suite|ste|flat|no|rm)(\d\w*)$")
# A number with a letter suffix ("12b"): split, so that "12B Oak St" and "12 B Oak St" compare equal. (Split
# rather than joined: "12 N Oak St", North Oak, keeps the form it was always stored in.)
_LETTERED_NUMBER = re.compile(r"^(\d+)([a-z])$")
_US_ZIP_PLUS_FOUR = re.compile(r"^(\d{5})\d{4}$")


def normalize_email(email: str) -> str:
    """An email in the form two accounts of one person share: lower case, no "+tag", no dots in the
    local part (for every domain: a few false matches between strangers cost less than letting
    "a.nn+1@" refer "ann@"), googlemail.com read as gmail.com."""
    local, at, domain = (email or "").strip().lower().rpartition("@")
    if not at:
        return (email or "").strip().lower()
    local = local.split("+", 1)[0].replace(".", "")
    if domain == "googlemail.com":
        domain = "gmail.com"
    return f"{local}@{domain}"


def normalize_address(address: Address) -> str:
    """An address typed however the shopper typed it → one form: case-folded, accents and punctuation
    dropped, street words abbreviated, unit words dropped, a house number's letter split off.
    "12 Oak Street, Apt 4", "12 oak st. apartment #4" and "12 Oak St Apt No. 4" all give "12 oak st 4"."""
    if isinstance(address, Mapping):
        parts = [_zip(_text(address.get(name))) if name == "zip" else _text(address.get(name))
                 for name in _COMPARED_FIELDS]
        text = " ".join(part for part in parts if part)
    else:
        text = _text(address)
    words = [_ABBREVIATIONS.get(word, word) for word in _words(_fold(text))]
    return " ".join(word for word in _without_unit_words(words) if word != "#")


def _words(text: str) -> Iterator[str]:
    for token in _TOKEN.findall(text):
        fused = _FUSED_UNIT.match(token)  # "apt4" → "apt", "4"
        for part in fused.groups() if fused else (token,):
            lettered = _LETTERED_NUMBER.match(part)  # "12b" → "12", "b"
            yield from lettered.groups() if lettered else (part,)


def _without_unit_words(words: List[str]) -> List[str]:
    """`words` without each run of unit words that a number follows ("apt # 4" → "4"); a run that
    announces no number ("No Name Rd") is kept."""
    kept: List[str] = []
    run: List[str] = []
    for word in words:
        if word in _UNIT_WORDS:
            run.append(word)
            continue
        if not any(ch.isdigit() for ch in word):
            kept.extend(run)
        run = []
        kept.append(word)
    return kept + run


def address_hash(address: Optional[Address], key: bytes) -> Optional[str]:
    """The keyed hash of an address; None when there is none or it is too vague to tell households apart
    (no number at all, or a single word such as "n/a": two strangers would share it)."""
    if address is None:
        return None
    normalized = normalize_address(address)
    if len(normalized.split()) < 2 or not any(ch.isdigit() for ch in normalized):
        return None
    return _keyed(key, "address", normalized)


def normalize_ip(ip: str) -> Optional[str]:
    """The network an address stands for: an IPv4 address itself, an IPv6 address's /64 prefix (an
    IPv4-mapped IPv6 address is its IPv4 address). None when `ip` is not an IP address."""
    raw = (ip or "").strip()
    if raw.startswith("[") and raw.endswith("]"):
        raw = raw[1:-1]
    raw = raw.split("%", 1)[0]  # a link-local zone ("fe80::1%eth0") names our interface, not the client
    try:
        parsed = ipaddress.ip_address(raw)
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{parsed}/{IPV6_HOUSEHOLD_PREFIX}", strict=False))
    return str(parsed)


def ip_hash(ip: Optional[str], key: bytes) -> Optional[str]:
    """The keyed hash of a client's network (see normalize_ip); None for anything that is not an IP."""
    network = normalize_ip(ip or "")
    return None if network is None else _keyed(key, "ip", network)


def fingerprint_key(settings: Settings) -> bytes:
    """The key of every fingerprint: FINGERPRINT_SECRET, else `<data_dir>/fingerprint.key` (made once,
    mode 0600, then reused; kept in memory after the first read)."""
    if settings.fingerprint_secret:
        return hashlib.sha256(settings.fingerprint_secret.encode()).digest()
    path = (settings.data_dir / KEY_FILE_NAME).resolve()
    with _keys_lock:
        if path not in _keys:
            _keys[path] = _key_file(path)
        return _keys[path]


_keys: Dict[Path, bytes] = {}
_keys_lock = threading.Lock()


def _key_file(path: Path) -> bytes:
    if not path.exists():
        _create_key_file(path)
    raw = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(raw)
    except ValueError:
        key = b""
    if len(key) < _KEY_BYTES:
        raise ValueError(
            f"{path} does not hold a fingerprint key (64 hex digits); restore it, or set FINGERPRINT_SECRET"
        )
    return key


def _create_key_file(path: Path) -> None:
    """Write a new key so that another process starting at the same moment either wins the race and
    we read its key, or loses it: a key is written to a private temporary file first and then linked
    into place, which fails rather than replaces when the file already exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(_KEY_BYTES) + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process made the key first: use theirs
    finally:
        temporary.unlink(missing_ok=True)


def _keyed(key: bytes, kind: str, value: str) -> str:
    # The kind is part of the message, so an address can never collide with a network.
    return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _zip(value: str) -> str:
    """A zip as one token: "SW1A 1AA" and "sw1a1aa" are one postcode; "12345-6789" is in "12345"."""
    compact = "".join(ch for ch in value if ch.isalnum()).lower()
    plus_four = _US_ZIP_PLUS_FOUR.match(compact)
    return plus_four.group(1) if plus_four else compact
