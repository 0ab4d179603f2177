"""The key under which an address is unique: email-validator's checks, then NFKC and case folding."""

from __future__ import annotations

import pytest

from starling_users.emails import email_key, lookup_key


@pytest.mark.parametrize(
    ("spellings", "key"),
    [
        (["Ada@Example.COM", "ada@example.com", "ADA@EXAMPLE.COM"], "ada@example.com"),
        (
            [
                "jos\N{LATIN SMALL LETTER E WITH ACUTE}@example.com",
                "jose\N{COMBINING ACUTE ACCENT}@example.com",
            ],
            "jos\N{LATIN SMALL LETTER E WITH ACUTE}@example.com",
        ),
        (
            [
                "ada@b\N{LATIN SMALL LETTER U WITH DIAERESIS}cher.de",
                "ada@xn--bcher-kva.de",
                "ada@XN--BCHER-KVA.DE",
            ],
            "ada@xn--bcher-kva.de",
        ),
        (["\uff41\uff44\uff41@\uff45xample.com", "ada@example.com"], "ada@example.com"),
        (["STRA\N{LATIN SMALL LETTER SHARP S}E@example.com", "strasse@example.com"], "strasse@example.com"),
        (
            ["\N{OHM SIGN}@example.com", "\N{GREEK CAPITAL LETTER OMEGA}@example.com"],
            "\N{GREEK SMALL LETTER OMEGA}@example.com",
        ),
    ],
    ids=["case", "nfc-nfd", "idn-punycode", "fullwidth", "case-folding", "compatibility"],
)
def test_spellings_of_one_address_have_one_key(spellings: list[str], key: str) -> None:
    assert {email_key(spelling) for spelling in spellings} == {key}


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("ada\N{ZERO WIDTH SPACE}@example.com", "ZERO WIDTH SPACE"),
        ("ada@exa\N{SOFT HYPHEN}mple.com", "SOFT HYPHEN"),
        ("ada@corp.local", "special-use"),
        ("ada@example", "period"),
        ("ada", "@-sign"),
        ('"a b"@example.com', "Quoting"),
    ],
)
def test_an_address_these_rules_refuse_says_why(address: str, reason: str) -> None:
    with pytest.raises(ValueError, match="not a valid email address") as refused:
        email_key(address)
    assert reason in str(refused.value)


def test_a_key_longer_than_its_column_once_normalised_is_refused() -> None:
    # U+FDFA is one character that NFKC spells with 18.
    with pytest.raises(ValueError, match="once normalised"):
        email_key("\N{ARABIC LIGATURE SALLALLAHOU ALAYHE WASALLAM}" * 14 + "@example.com")


def test_lookup_finds_an_address_stored_before_these_rules_by_its_old_key() -> None:
    assert lookup_key(" Ada@Example.com ") == "ada@example.com"
    assert lookup_key(" Bo@Corp.LOCAL ") == "bo@corp.local"
