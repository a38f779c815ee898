"""The built-in detectors: sensitive values in free text, found by pattern and checked.

Each is a class as a third party would write it against ``gatekeeper.api`` (``docs/plugins.md``),
registered in ``gatekeeper.detectors``. A candidate is checked before it counts (Luhn for cards,
mod 97 for IBANs, the issued ranges for SSNs, octets for IPv4), and a number is only a number
when its own digits end: a card inside a longer digit run is not a card. Patterns use ASCII
digits only and never depend on where the text starts or ends, so every built-in accepts the
strings of a document joined by ``"\\x00"`` (``accepts_joined_text``).

Speed: the regex engine skips ahead fast only to a pattern's first literal or character class,
so each pattern consumes one character before its boundary lookbehind (``[0-9](?<![0-9][0-9])``
rather than ``(?<![0-9])[0-9]``), and the email detector starts from each ``@``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import orjson

from gatekeeper.api import MaskingContext, Span
from gatekeeper.masking.checks import iban_lengths, iban_valid, luhn_valid, ssn_valid

__all__ = ["AwsAccessKeyId", "CreditCard", "Email", "Iban", "Ipv4", "Jwt", "Phone", "PrivateKey", "UsSsn"]

_NO_OPTIONS: Mapping[str, Any] = {"type": "object", "additionalProperties": False}


class _Builtin:
    options_schema: ClassVar[Mapping[str, Any]] = _NO_OPTIONS
    accepts_joined_text: ClassVar[bool] = True

    def __init__(self, options: Mapping[str, Any], context: MaskingContext) -> None:
        pass


# -- digit runs: cards and phone numbers ----------------------------------------------------------

_RUN = re.compile(r"[0-9](?<![0-9][0-9])[0-9 -]{12,}")  # digits and separators, 13 or more
_GROUP = re.compile(r"[0-9]+")


class CreditCard(_Builtin):
    """13 to 19 digits passing the Luhn check, written whole (``4111111111111111``) or in groups
    of 3 to 8 digits separated by a space or a dash (``4111 1111 1111 1111``, Amex
    ``3782-822463-10005``). From a run of groups the longest valid cards are taken, so
    ``4111 1111 1111 1111 2`` (a quantity after the card) still finds the card."""

    def find(self, text: str) -> Iterator[Span]:
        for run in _RUN.finditer(text):
            groups = [g.span() for g in _GROUP.finditer(text, run.start(), run.end())]
            i = 0
            while i < len(groups):
                end = self._card_from(text, groups, i)
                if end is None:
                    i += 1
                else:
                    yield groups[i][0], groups[end][1]
                    i = end + 1

    @staticmethod
    def _card_from(text: str, groups: list[Span], i: int) -> int | None:
        """The last group of the longest valid card starting at group ``i``, if any."""
        first = groups[i][1] - groups[i][0]
        if 13 <= first <= 19 and luhn_valid(text[groups[i][0] : groups[i][1]]):
            return i
        best = None
        digits = ""
        for j in range(i, len(groups)):
            start, end = groups[j]
            if not 3 <= end - start <= 8 or (j > i and start - groups[j - 1][1] != 1):
                break  # a group too short or long, or two separators in a row
            digits += text[start:end]
            if len(digits) > 19:
                break
            if j > i and len(digits) >= 13 and luhn_valid(digits):
                best = j
        return best


_PHONE = re.compile(r"\+(?<![\w+]\+)[1-9][0-9]*(?:[ -][0-9]+)*(?![0-9])")


class Phone(_Builtin):
    """E.164 numbers: ``+`` then 8 to 15 digits, whole or in groups separated by a space or a
    dash (``+14155552671``, ``+44 20 7946 0958``). A ``+`` followed by more than 15 digits in one
    run is not a phone number."""

    def find(self, text: str) -> Iterator[Span]:
        for m in _PHONE.finditer(text):
            digits, end = 0, None
            for g in _GROUP.finditer(text, m.start(), m.end()):
                if digits + g.end() - g.start() > 15:
                    break  # the first group: a longer run, no phone; a later one: the phone ended
                digits += g.end() - g.start()
                end = g.end()
            if end is not None and digits >= 8:
                yield m.start(), end


_SSN = re.compile(r"[0-9][0-9]{2}([- ])(?<![0-9]{4}.)(?<![0-9]-[0-9]{3}.)[0-9]{2}\1[0-9]{4}(?![0-9])(?!-[0-9])")
_SSN_BARE = re.compile(r"[0-9][0-9]{8}(?<![0-9]{10})(?<![0-9]-[0-9]{9})(?![0-9])(?!-[0-9])")


class UsSsn(_Builtin):
    """US social security numbers written ``NNN-NN-NNNN`` or ``NNN NN NNNN`` (one separator
    throughout); with option ``bare: true`` also nine digits in a run of their own (off by
    default: most nine-digit numbers are not SSNs). Numbers never issued are left alone: area
    000, 666 or 900-999, group 00, serial 0000."""

    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"bare": {"type": "boolean"}},
    }

    def __init__(self, options: Mapping[str, Any], context: MaskingContext) -> None:
        self._patterns = (_SSN, _SSN_BARE) if options.get("bare", False) else (_SSN,)

    def find(self, text: str) -> Iterator[Span]:
        for pattern in self._patterns:
            for m in pattern.finditer(text):
                digits = m.group().replace("-", "").replace(" ", "")
                if ssn_valid(digits[:3], digits[3:5], digits[5:]):
                    yield m.span()


# -- addresses and identifiers -------------------------------------------------------------------

_LOCAL_CHARS = frozenset("!#$%&'*+/=?^_`{|}~-.")
_DOMAIN = re.compile(r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}")


class Email(_Builtin):
    """Addresses ``local@domain.tld`` (letters of any script; the domain has a dot and a
    top-level label of two or more letters). ``user@localhost`` is not matched. The local part
    is taken up to 64 characters back from the ``@``."""

    def find(self, text: str) -> Iterator[Span]:
        at = text.find("@")
        while at >= 0:
            domain = _DOMAIN.match(text, at + 1)
            if domain is not None:
                start, low = at, max(at - 64, 0)
                while start > low and (text[start - 1].isalnum() or text[start - 1] in _LOCAL_CHARS):
                    start -= 1
                while start < at and text[start] == ".":
                    start += 1  # a local part neither starts nor ends with a dot
                if start < at and text[at - 1] != ".":
                    yield start, domain.end()
            at = text.find("@", at + 1)


_IBAN_START = re.compile(r"[0-9][0-9](?<=[A-Za-z]{2}[0-9]{2})(?<![A-Za-z0-9][A-Za-z]{2}[0-9]{2})")


class Iban(_Builtin):
    """International bank account numbers: a country code, two check digits and the account,
    with single spaces allowed anywhere (``DE89 3704 0044 0532 0130 00``), upper or lower case,
    checked by mod 97 and, for the countries in the IBAN registry, by length (so a word after
    the IBAN is not taken for part of it). Other country codes are tried at lengths 15-34."""

    def find(self, text: str) -> Iterator[Span]:
        done = 0
        for m in _IBAN_START.finditer(text):
            if m.start() < done:
                continue  # inside the IBAN just found
            span = self._iban_at(text, m.start() - 2, m.end())
            if span is not None:
                yield span
                done = span[1]

    @staticmethod
    def _iban_at(text: str, start: int, pos: int) -> Span | None:
        chars = [text[start:pos].upper()]
        ends: dict[int, int] = {4: pos}  # IBAN length -> text offset after it
        n, i = 4, pos
        while n < 34 and i < len(text):
            c = text[i]
            if c == " " and i + 1 < len(text) and text[i + 1].isascii() and text[i + 1].isalnum():
                i += 1
                c = text[i]
            if not (c.isascii() and c.isalnum()):
                break
            chars.append(c.upper())
            i += 1
            n += 1
            ends[n] = i
        compact = "".join(chars)
        for length in iban_lengths(compact[:2]):
            end = ends.get(length)
            if end is None:
                continue
            if end < len(text) and text[end].isascii() and text[end].isalnum():
                continue  # the token goes on: not an IBAN of this length
            if iban_valid(compact[:length]):
                return start, end
        return None


_IPV4 = re.compile(r"[0-9](?<![0-9.][0-9])[0-9]{0,2}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?![0-9]|\.[0-9])")


def _octets_valid(address: str) -> bool:
    return all(int(o) <= 255 and (o == "0" or o[0] != "0") for o in address.split("."))


class Ipv4(_Builtin):
    """Dotted-quad IPv4 addresses, each octet 0-255 without leading zeros (``10.0.0.1``, not
    ``300.1.1.1`` nor the first four parts of ``1.2.3.4.5``)."""

    def find(self, text: str) -> Iterator[Span]:
        for m in _IPV4.finditer(text):
            if _octets_valid(m.group()):
                yield m.span()


_AWS_KEY = re.compile(r"A(?<![A-Za-z0-9]A)(?:KIA|SIA)[A-Z0-9]{16}(?![A-Za-z0-9])")


class AwsAccessKeyId(_Builtin):
    """AWS access key ids: ``AKIA`` (long-term) or ``ASIA`` (temporary) and 16 upper-case
    letters or digits, as a token of its own."""

    def find(self, text: str) -> Iterator[Span]:
        for m in _AWS_KEY.finditer(text):
            yield m.span()


_PEM_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
_PEM_END = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\x00")


class PrivateKey(_Builtin):
    """PEM private keys, ``-----BEGIN … PRIVATE KEY-----`` to ``-----END … PRIVATE KEY-----``
    (RSA, EC, OPENSSH, ENCRYPTED …) with both markers. A block with no end marker (a truncated
    key) is masked to the end of its string."""

    def find(self, text: str) -> Iterator[Span]:
        if "PRIVATE KEY-----" not in text:
            return
        pos = 0
        while (begin := _PEM_BEGIN.search(text, pos)) is not None:
            end = _PEM_END.search(text, begin.end())
            if end is None:
                yield begin.start(), len(text)
                return
            stop = end.start() if end.group() == "\x00" else end.end()
            yield begin.start(), stop
            pos = stop


_JWT = re.compile(r"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*){2,4}(?![A-Za-z0-9_-])")


class Jwt(_Builtin):
    """JSON Web Tokens (and JWE): base64url segments joined by dots, three (or five), the first a
    header that decodes to a JSON object (``eyJ…``). The signature may be empty (``alg: none``)."""

    def find(self, text: str) -> Iterator[Span]:
        if "eyJ" not in text:
            return
        for m in _JWT.finditer(text):
            segments = m.group().split(".")
            if len(segments) == 4:  # a JWS followed by a dot, as at the end of a sentence
                segments = segments[:3]
            header = segments[0]
            try:
                decoded = orjson.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
            except (binascii.Error, ValueError):  # orjson.JSONDecodeError is a ValueError
                continue
            if isinstance(decoded, dict) and segments[1]:
                yield m.start(), m.start() + len(".".join(segments))
