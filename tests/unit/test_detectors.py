from __future__ import annotations

import pytest

from gatekeeper.api import MaskingContext
from gatekeeper.masking.detectors import (
    AwsAccessKeyId,
    CreditCard,
    Email,
    Iban,
    Ipv4,
    Jwt,
    Phone,
    PrivateKey,
    UsSsn,
)

CONTEXT = MaskingContext(name="test")
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nq1w2e3r4\n-----END RSA PRIVATE KEY-----"


def found(cls: type, text: str, **options: object) -> list[str]:
    return [text[s:e] for s, e in sorted(cls(options, CONTEXT).find(text))]


# (detector, text, the spans it must find)
POSITIVE = [
    (CreditCard, "card 4111111111111111 ok", ["4111111111111111"]),
    (CreditCard, "4111 1111 1111 1111", ["4111 1111 1111 1111"]),
    (CreditCard, "mc 5500-0000-0000-0004.", ["5500-0000-0000-0004"]),
    (CreditCard, "amex 3782-822463-10005", ["3782-822463-10005"]),
    (CreditCard, "x6011111111111117y", ["6011111111111117"]),
    (CreditCard, "4111 1111 1111 1111 2 items", ["4111 1111 1111 1111"]),
    (CreditCard, "order 1234 4111 1111 1111 1111", ["4111 1111 1111 1111"]),
    (CreditCard, "a 4111111111111111, b 5500000000000004", ["4111111111111111", "5500000000000004"]),
    (UsSsn, "ssn 123-45-6789.", ["123-45-6789"]),
    (UsSsn, "ssn 123 45 6789", ["123 45 6789"]),
    (Email, "mail ada@example.com now", ["ada@example.com"]),
    (Email, "<first.last+tag@sub.example.co.uk>", ["first.last+tag@sub.example.co.uk"]),
    (Email, "jörg@bücher.de", ["jörg@bücher.de"]),
    (Email, "end of sentence: ada@example.com.", ["ada@example.com"]),
    (Iban, "pay DE89 3704 0044 0532 0130 00 EUR", ["DE89 3704 0044 0532 0130 00"]),
    (Iban, "GB82WEST12345698765432", ["GB82WEST12345698765432"]),
    (Iban, "gb82 west 1234 5698 7654 32", ["gb82 west 1234 5698 7654 32"]),
    (Iban, "nl: NL91ABNA0417164300.", ["NL91ABNA0417164300"]),
    (Phone, "call +14155552671", ["+14155552671"]),
    (Phone, "call +44 20 7946 0958 today", ["+44 20 7946 0958"]),
    (Ipv4, "from 10.0.0.1 and 255.255.255.255.", ["10.0.0.1", "255.255.255.255"]),
    (Ipv4, "host=192.168.1.254:8080", ["192.168.1.254"]),
    (AwsAccessKeyId, "key AKIAIOSFODNN7EXAMPLE", ["AKIAIOSFODNN7EXAMPLE"]),
    (AwsAccessKeyId, "ASIAY34FZKBOKMUTVV7A,", ["ASIAY34FZKBOKMUTVV7A"]),
    (PrivateKey, f"key: {PEM} trailing", [PEM]),
    (PrivateKey, "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg", ["-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg"]),
    (Jwt, f"Bearer {JWT}", [JWT]),
    (Jwt, f"token {JWT}.", [JWT]),
]

NEGATIVE = [
    (CreditCard, "order 4111111111111112"),  # Luhn fails
    (CreditCard, "order id 1234567812345678"),  # 16 digits, Luhn fails
    (CreditCard, "41111111111111119"),  # a card inside a longer digit run
    (CreditCard, "941111111111111119"),
    (CreditCard, "411111111111"),  # too short
    (CreditCard, "41 11 11 11 11 11 11 11"),  # groups too short to be a card's
    (CreditCard, "٤١١١١١١١١١١١١١١١"),  # not ASCII digits
    (UsSsn, "000-12-3456"),
    (UsSsn, "666-12-3456"),
    (UsSsn, "900-12-3456"),
    (UsSsn, "999-12-3456"),
    (UsSsn, "123-00-4567"),
    (UsSsn, "123-45-0000"),
    (UsSsn, "123-45 6789"),  # mixed separators
    (UsSsn, "1123-45-6789"),
    (UsSsn, "123-45-67890"),
    (UsSsn, "555-123-45-6789"),
    (UsSsn, "123456789"),  # bare digits: only with the option
    (Email, "user@localhost"),
    (Email, "@example.com"),
    (Email, "no at sign here"),
    (Iban, "DE89 3704 0044 0532 0130 01"),  # checksum
    (Iban, "DE89370400440532013000123"),  # the token goes on
    (Iban, "XDE89370400440532013000"),
    (Phone, "+1234567"),  # 7 digits
    (Phone, "+1234567890123456"),  # 16 digits in one run
    (Phone, "a+14155552671"),
    (Phone, "+04155552671"),
    (Ipv4, "256.1.1.1"),
    (Ipv4, "1.2.3.4.5"),
    (Ipv4, "01.2.3.4"),
    (Ipv4, "1.2.3"),
    (Ipv4, "version 1.2.3.4.5.6"),
    (AwsAccessKeyId, "AKIAIOSFODNN7EXAMPL"),
    (AwsAccessKeyId, "XAKIAIOSFODNN7EXAMPLE"),
    (AwsAccessKeyId, "akiaiosfodnn7example"),
    (AwsAccessKeyId, "AKIAIOSFODNN7EXAMPLE1"),
    (PrivateKey, "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----"),
    (Jwt, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"),
    (Jwt, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"),
    (Jwt, "eyJ!!!!.abc.def"),
    (Jwt, "eyJub3QganNvbg.abc.def"),  # the header is not a JSON object
]


@pytest.mark.parametrize(("cls", "text", "expected"), POSITIVE, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(POSITIVE)])
def test_detector_finds(cls: type, text: str, expected: list[str]) -> None:
    assert found(cls, text) == expected


@pytest.mark.parametrize(("cls", "text"), NEGATIVE, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(NEGATIVE)])
def test_detector_leaves_look_alikes(cls: type, text: str) -> None:
    assert found(cls, text) == []


def test_bare_ssn_option() -> None:
    assert found(UsSsn, "id 123456789 and 123-45-6789", bare=True) == ["123456789", "123-45-6789"]
    assert found(UsSsn, "000456789 1234567890", bare=True) == []


def test_jwe_five_segments() -> None:
    jwe = "eyJhbGciOiJSU0EtT0FFUCJ9.a2V5.aXY.Y2lwaGVy.dGFn"
    assert found(Jwt, f"x {jwe} y") == [jwe]


def test_pem_block_stops_at_the_string_separator() -> None:
    text = "-----BEGIN EC PRIVATE KEY-----\nabc\x00next string"
    assert found(PrivateKey, text) == ["-----BEGIN EC PRIVATE KEY-----\nabc"]


@pytest.mark.parametrize("cls", [CreditCard, UsSsn, Email, Iban, Phone, Ipv4, AwsAccessKeyId, PrivateKey, Jwt])
def test_builtins_accept_joined_text(cls: type) -> None:
    """A match never spans the separator of joined strings and the separator is a boundary."""
    assert cls.accepts_joined_text is True
    sample = {
        CreditCard: "4111111111111111", UsSsn: "123-45-6789", Email: "ada@example.com",
        Iban: "DE89370400440532013000", Phone: "+14155552671", Ipv4: "10.0.0.1",
        AwsAccessKeyId: "AKIAIOSFODNN7EXAMPLE", PrivateKey: PEM, Jwt: JWT,
    }[cls]
    text = f"{sample}\x00{sample}\x00x{sample[:5]}"
    spans = sorted(cls({}, CONTEXT).find(text))
    assert [text[s:e] for s, e in spans] == [sample, sample]


def test_long_inputs_stay_linear() -> None:
    """No pattern backtracks badly on long runs of the characters it matches."""
    import time

    texts = ["1 " * 20000, "a" * 50000 + "@", "a." * 20000 + "@x", "A" * 50000, "9" * 50000, "+1 " * 20000]
    start = time.perf_counter()
    for cls in (CreditCard, UsSsn, Email, Iban, Phone, Ipv4, AwsAccessKeyId, PrivateKey, Jwt):
        for text in texts:
            list(cls({}, CONTEXT).find(text))
    assert time.perf_counter() - start < 10
