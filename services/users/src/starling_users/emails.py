"""One address, one account: the key under which the database keeps an email address unique."""

from __future__ import annotations

import unicodedata

from email_validator import EmailNotValidError, validate_email

MAX_EMAIL_LENGTH = 254


def email_key(address: str) -> str:
    """The address as the uniqueness check sees it; ValueError, saying why, for one that is not valid.

    email-validator checks the syntax, refuses invisible and other unsafe characters (a zero-width
    space), applies NFC to the local part and turns an internationalised domain into its ASCII
    (punycode) form, so `bücher.de` and `xn--bcher-kva.de` are one domain. The local part is then
    NFKC-normalised and case-folded, so fullwidth look-alikes and letters in another case are one address.
    """
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"value is not a valid email address: {exc}") from None
    local = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", checked.local_part).casefold())
    key = f"{local}@{checked.ascii_domain}"
    # NFKC and case folding can lengthen a string ("ﷺ" becomes 18 characters); the key's column is
    # as wide as an address, which PostgreSQL enforces.
    if len(key) > MAX_EMAIL_LENGTH:
        raise ValueError(f"value is longer than {MAX_EMAIL_LENGTH} characters once normalised")
    return key


def lookup_key(address: str) -> str:
    """The key to find an account by: the address's key, or, for an address these rules refuse, the key
    such an address was stored under before them (`strip().lower()`; revision 0003 left those as they
    were). Nobody registers such an address now, but its account can still log in."""
    address = address.strip()
    try:
        return email_key(address)
    except ValueError:
        return address.lower()
