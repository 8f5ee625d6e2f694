"""Fingerprints for the referral fraud rules: one person's emails, addresses and networks compare equal,
strangers' do not, and what is stored is a keyed hash."""
from __future__ import annotations

import stat

import pytest

from bot.advocacy.fingerprints import (
    KEY_FILE_NAME, address_hash, fingerprint_key, ip_hash, normalize_address, normalize_email, normalize_ip,
)
from bot.settings import Settings

KEY = b"k" * 32


@pytest.mark.parametrize("typed", [
    "ann@gmail.com", "Ann@Gmail.com", " ANN@GMAIL.COM ", "a.n.n@gmail.com", "ann+shop@gmail.com",
    "A.nn+referral+2@googlemail.com",
])
def test_one_persons_email_spellings_normalize_equal(typed: str) -> None:
    assert normalize_email(typed) == "ann@gmail.com"


def test_dots_and_tags_are_dropped_for_every_domain_but_domains_differ() -> None:
    assert normalize_email("j.doe+x@example.com") == "jdoe@example.com"
    assert normalize_email("ann@example.com") != normalize_email("ann@example.org")
    assert normalize_email("ann@gmail.com") != normalize_email("anna@gmail.com")


@pytest.mark.parametrize("typed", [
    "12 Oak Street, Apt 4",
    "12 oak st. apartment 4",
    "12 OAK ST #4",
    "12 Oak St, Unit 4",
    "12  oak   street\tsuite 4",
    "12 Oak Str. No. 4",
    "12 Oak St Apt #4",
    "12 Oak St, Apt. #4",
    "12 Oak Street Apartment #4",
    "12 Oak St Apt No. 4",
    "12 Oak St Unit Number 4",
])
def test_one_address_typed_differently_normalizes_equal(typed: str) -> None:
    assert normalize_address(typed) == "12 oak st 4"
    assert address_hash(typed, KEY) == address_hash("12 Oak Street, Apt 4", KEY)


def test_structured_addresses_compare_whatever_the_province_and_country_spelling() -> None:
    one = {"address1": "12 North Oak Avenue", "address2": "Apt 4", "city": "Springfield", "province": "Illinois",
           "zip": "62704-1234", "country": "United States"}
    two = {"address1": "12 N. Oak Ave #4", "city": "SPRINGFIELD", "province": "IL", "zip": "62704", "country": "US"}
    assert normalize_address(one) == normalize_address(two) == "12 n oak ave 4 springfield 62704"
    assert address_hash(one, KEY) == address_hash(two, KEY)
    assert normalize_address({"address1": "1 Baker St", "zip": "SW1A 1AA"}) == normalize_address(
        {"address1": "1 baker street", "zip": "sw1a1aa"})
    assert normalize_address("Crème Brûlée Road 5") == "creme brulee rd 5"


@pytest.mark.parametrize("typed", ["12B Oak St", "12 B Oak St", "12b oak street", "12 b Oak St."])
def test_a_house_numbers_letter_compares_equal_joined_or_apart(typed: str) -> None:
    assert normalize_address(typed) == "12 b oak st"


def test_unit_words_stay_when_no_number_follows() -> None:
    assert normalize_address("5 No Name Road") == "5 no name rd"
    assert normalize_address("12 Oak St Apt B") == "12 oak st apt b"


@pytest.mark.parametrize("other", [
    "12 Oak Street, Apt 5", "14 Oak Street, Apt 4", "12 Elm Street, Apt 4", "12 Oak Avenue, Apt 4",
    {"address1": "12 Oak Street", "address2": "Apt 4", "zip": "62705"},
    "12B Oak Street, Apt 4", "12 Oak Street, Apt #4B", "12 Oak Street, Apt 14", "124 Oak Street",
])
def test_different_addresses_differ(other) -> None:
    base = {"address1": "12 Oak Street", "address2": "Apt 4", "zip": "62704"} if isinstance(other, dict) \
        else "12 Oak Street, Apt 4"
    assert address_hash(other, KEY) != address_hash(base, KEY)


@pytest.mark.parametrize("vague", [None, "", "   ", "n/a", "-", "Oak Street", {"country": "US"}, {}])
def test_an_address_too_vague_to_tell_households_apart_has_no_hash(vague) -> None:
    assert address_hash(vague, KEY) is None


def test_ip_hashes_are_stable_keyed_and_never_the_address() -> None:
    first = ip_hash("203.0.113.7", KEY)
    assert first == ip_hash(" 203.0.113.7 ", KEY) and len(first) == 64 and "203" not in first
    assert ip_hash("203.0.113.8", KEY) != first
    assert ip_hash("203.0.113.7", b"another key" * 3) != first
    assert address_hash("12 Oak Street 4", KEY) != address_hash("12 Oak Street 4", b"another key" * 3)
    # An IPv4 client seen through an IPv6 socket is the same client.
    assert ip_hash("::ffff:203.0.113.7", KEY) == first


def test_ipv6_addresses_of_one_household_share_their_64_prefix() -> None:
    home = ip_hash("2001:db8:1234:5678::1", KEY)
    assert home == ip_hash("2001:0db8:1234:5678:abcd:ef01:2345:6789", KEY) == ip_hash("[2001:db8:1234:5678::2]", KEY)
    assert ip_hash("2001:db8:1234:5679::1", KEY) != home
    assert normalize_ip("2001:db8:1234:5678:ffff::1") == "2001:db8:1234:5678::/64"
    assert normalize_ip("fe80::1%eth0") == "fe80::/64"


@pytest.mark.parametrize("junk", [None, "", "not-an-ip", "999.1.1.1", "1.2.3", "203.0.113.7:443", "::g", "1" * 500])
def test_anything_but_an_ip_has_no_hash(junk) -> None:
    assert ip_hash(junk, KEY) is None


def test_without_a_secret_a_key_file_is_made_once_private_and_reused(tmp_path) -> None:
    settings = Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path / "data")})
    key = fingerprint_key(settings)
    path = tmp_path / "data" / KEY_FILE_NAME
    assert len(key) == 32 and path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    written = path.read_text()
    assert fingerprint_key(settings) == key and path.read_text() == written
    # Another process (no cache) reads the same key from the file.
    from bot.advocacy import fingerprints

    fingerprints._keys.clear()
    assert fingerprint_key(Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path / "data")})) == key
    assert [p.name for p in path.parent.iterdir()] == [KEY_FILE_NAME]  # no temporary files left behind
    # Another installation gets another key.
    assert fingerprint_key(Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path / "other")})) != key


def test_a_configured_secret_is_the_key_and_no_file_is_made(tmp_path) -> None:
    settings = Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path), "FINGERPRINT_SECRET": "s3cret-fingerprints"})
    assert fingerprint_key(settings) == fingerprint_key(settings) and len(fingerprint_key(settings)) == 32
    assert not (tmp_path / KEY_FILE_NAME).exists()
    assert "s3cret-fingerprints" not in repr(settings)
    other = Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path), "FINGERPRINT_SECRET": "another"})
    assert fingerprint_key(other) != fingerprint_key(settings)


def test_a_damaged_key_file_is_an_error_not_a_new_key(tmp_path) -> None:
    (tmp_path / KEY_FILE_NAME).write_text("not a key")
    with pytest.raises(ValueError, match="FINGERPRINT_SECRET"):
        fingerprint_key(Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path)}))


def test_the_address_fields_are_defined_once() -> None:
    from bot.advocacy import fingerprints
    from bot.web import payloads

    assert payloads.ADDRESS_FIELDS is fingerprints.ADDRESS_FIELDS
