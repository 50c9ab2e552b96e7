"""Checksums and validators of Chinese identifiers and card numbers (GB 11643, GB 32100, Luhn)."""

from __future__ import annotations

import datetime as _dt

_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))  # 7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2
_ID_CHECK = "10X98765432"
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
# Province-level prefixes of GB/T 2260 (plus 83 for Taiwan residence permits, 9x for new foreigner IDs).
_CN_PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 "
    "71 81 82 83 91 92 93".split()
)


def cn_id_check_char(first17: str) -> str:
    """GB 11643 / ISO 7064 MOD 11-2 check character for the first 17 digits of a resident ID."""
    total = sum(int(d) * w for d, w in zip(first17[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def _real_birth_date(year: int, month: int, day: int) -> bool:
    """A birth date is plausible if it is a real calendar day between 1900-01-01 and today."""
    if year < 1900:
        return False
    try:
        return _dt.date(year, month, day) <= _dt.date.today()
    except ValueError:
        return False


def is_valid_cn_id(value: str) -> bool:
    """True for an 18-char ID with valid province, birth date and check char, or a 15-digit legacy ID.

    Legacy IDs (pre-1999) carry no check digit, so only province and YYMMDD (19YY) can be checked.
    """
    v = value.upper()
    if len(v) == 18 and v[:17].isdigit() and (v[17].isdigit() or v[17] == "X"):
        ok_date = _real_birth_date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
        return v[:2] in _CN_PROVINCES and ok_date and cn_id_check_char(v[:17]) == v[17]
    if len(v) == 15 and v.isdigit():
        return v[:2] in _CN_PROVINCES and _real_birth_date(1900 + int(v[6:8]), int(v[8:10]), int(v[10:12]))
    return False


def luhn_valid(number: str) -> bool:
    """ISO/IEC 7812 Luhn check over the digits of `number` (separators are ignored)."""
    digits = [int(c) for c in number if c.isdigit()]
    if len(digits) < 2:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def luhn_check_digit(partial: str) -> str:
    """The digit that makes `partial + digit` Luhn-valid (used to build fake cards)."""
    for d in "0123456789":
        if luhn_valid(partial + d):
            return d
    raise AssertionError("unreachable: one of ten digits always satisfies Luhn")


def uscc_check_char(first17: str) -> str:
    """GB 32100-2015 check character: weights 3^i mod 31 over the 31-symbol alphabet."""
    total = sum(_USCC_ALPHABET.index(c) * w for c, w in zip(first17[:17], _USCC_WEIGHTS, strict=True))
    return _USCC_ALPHABET[(31 - total % 31) % 31]


def is_valid_uscc(value: str) -> bool:
    """True for an 18-char unified social credit code with a valid structure and check character.

    Position 1 is the registration authority (1-9, A, N, Y), 2 the entity type (1-9), 3-8 a region code.
    """
    v = value.upper()
    if len(v) != 18 or any(c not in _USCC_ALPHABET for c in v):
        return False
    if v[0] not in "123456789ANY" or v[1] not in "123456789" or not v[2:8].isdigit() or v[2] in "09":
        return False
    return uscc_check_char(v[:17]) == v[17]


def _card_network_ok(digits: str) -> bool:
    """Issuer prefixes that exist for 16-19 digit cards; rules out timestamps/orders starting with 1, 20xx, 7, 8."""
    first = digits[0]
    if first in "3456":
        return True
    if first == "9":
        return digits.startswith("95")  # legacy domestic cards (e.g. 9558...)
    if first == "2":
        head = int(digits[:4])
        return 2200 <= head <= 2204 or 2221 <= head <= 2720
    return False
