"""Pseudonyms: realistic, checksum-valid fakes derived from a keyed hash of the real value."""

from __future__ import annotations

import datetime as _dt
import ipaddress
import random
import re
from collections.abc import Callable

from r1tune.data.pii.checksums import _USCC_ALPHABET, cn_id_check_char, luhn_check_digit, uscc_check_char
from r1tune.data.pii.names import _EN_GIVEN, _surname_len
from r1tune.data.pii.text import _HAS_CJK

_FAKE_REGIONS = ("110101", "110105", "310104", "310115", "440305", "440106", "330106", "320102", "510107",
                 "420106", "610113", "370202", "350203", "500103", "120101", "430104", "210102", "530102")
_MOBILE_PREFIXES = ("130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155",
                    "156", "157", "158", "159", "166", "177", "180", "181", "182", "185", "186", "187", "188",
                    "189", "191", "198", "199")
_FAKE_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
_FAKE_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚英华玉萍红飞鹏辉宇浩欣怡婷雪琳晨博文俊思佳子涵轩睿然晴悦宁凯" \
              "健波斌鑫峰建国志海兰凤桂梅琴云莉慧颖倩璐瑶璇嘉航泽铭昊宏毅"
_FAKE_EN_FIRST = ("Alex", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery", "Quinn", "Parker",
                  "Emma", "Olivia", "Liam", "Noah", "Sophia", "Mia", "Lucas", "Ethan", "Grace", "Henry", "Chloe",
                  "Daniel", "Hannah", "Owen", "Ella", "Isaac", "Lily", "Nathan", "Zoe", "Caleb")
_FAKE_EN_LAST = ("Smith", "Johnson", "Brown", "Miller", "Davis", "Wilson", "Moore", "Clark", "Lewis", "Walker",
                 "Hall", "Young", "King", "Wright", "Scott", "Green", "Baker", "Adams", "Nelson", "Hill",
                 "Campbell", "Mitchell", "Roberts", "Carter", "Turner", "Parker", "Evans", "Collins", "Stewart",
                 "Morris")
_FAKE_CITIES = (("江城", "东湖"), ("临海", "新港"), ("青山", "云溪"), ("安平", "白沙"), ("长宁", "金桥"), ("星河", "南湾"))
_FAKE_ROADS = ("和平", "建设", "解放", "文化", "学府", "滨河", "青年", "光明", "幸福", "长青", "新华", "友谊")
_FAKE_EN_STREETS = ("Oak", "Maple", "Cedar", "Pine", "Elm", "Willow", "Birch", "Lake", "Hill", "Park", "River")
_CARD_GROUP_SEP = re.compile(r"[ -]")


def _fill_digits(template: str, digits: str) -> str:
    """Write `digits` into the last len(digits) digit positions of `template`, keeping its separators."""
    out, it = list(template), iter(digits)
    positions = [i for i, c in enumerate(template) if c.isdigit()][-len(digits):]
    for i in positions:
        out[i] = next(it)
    return "".join(out)


def _rand_digits(rng: random.Random, n: int) -> str:
    """n random decimal digits from a seeded generator (deterministic per value)."""
    return "".join(rng.choice("0123456789") for _ in range(n))


def _fake_cn_id(rng: random.Random, real: str) -> str:
    """Checksum-valid 18-digit (or date-valid 15-digit) ID; the sex digit keeps the real one's parity."""
    day = _dt.date(1950, 1, 1) + _dt.timedelta(days=rng.randrange(0, 20000))
    seq = rng.randrange(0, 500) * 2 + (int(real[16 if len(real) == 18 else 14]) % 2)
    if len(real) == 15:
        return f"{rng.choice(_FAKE_REGIONS)}{day:%y%m%d}{seq:03d}"
    first17 = f"{rng.choice(_FAKE_REGIONS)}{day:%Y%m%d}{seq:03d}"
    check = cn_id_check_char(first17)
    return first17 + (check.lower() if real[-1] == "x" else check)


def _fake_phone(rng: random.Random, real: str) -> str:
    """Same written shape; CN mobiles get a real carrier prefix, NANP numbers the fictional 555-01xx block.

    Landline and other international numbers keep their area/country code and get new subscriber digits.
    """
    digits = re.sub(r"\D", "", real)
    if re.fullmatch(r"(?:0086|86)?1[3-9]\d{9}", digits) and not _is_nanp(real):
        return _fill_digits(real, rng.choice(_MOBILE_PREFIXES) + _rand_digits(rng, 8))
    if _is_nanp(real):
        return _fill_digits(real, f"{rng.randrange(201, 990)}55501{_rand_digits(rng, 2)}")
    n = max(4, min(8, len(digits) - 3))
    return _fill_digits(real, str(rng.randrange(2, 9)) + _rand_digits(rng, n - 1))


def _is_nanp(real: str) -> bool:
    """North-American number: written with +1, or 10 digits not starting with 0 or a CN mobile prefix."""
    digits = re.sub(r"\D", "", real)
    return real.lstrip("(").startswith("+1") or (len(digits) == 10 and digits[0] in "23456789")


def _fake_card(rng: random.Random, real: str) -> str:
    """Luhn-valid card of the same length and grouping; only the 2-digit network prefix is kept."""
    digits = re.sub(r"\D", "", real)
    body = digits[:2] + _rand_digits(rng, len(digits) - 3)
    return _fill_digits(real, body + luhn_check_digit(body))


def _fake_uscc(rng: random.Random, real: str) -> str:
    """Checksum-valid USCC with a company-type prefix (91) and a fake region/organisation part."""
    first17 = "91" + rng.choice(_FAKE_REGIONS) + "".join(rng.choice(_USCC_ALPHABET) for _ in range(9))
    return first17 + uscc_check_char(first17)


def _fake_passport(rng: random.Random, real: str) -> str:
    """Keep the letter prefix and length, randomise the digits."""
    return "".join(rng.choice("0123456789") if c.isdigit() else c for c in real)


def _fake_email(rng: random.Random, real: str) -> str:
    """Name-like local part at a reserved example domain, so no real mailbox is ever addressed."""
    first, last = rng.choice(_FAKE_EN_FIRST).lower(), rng.choice(_FAKE_EN_LAST).lower()
    return f"{first}.{last}{rng.randrange(10, 1000)}@{rng.choice(('example.com', 'example.org', 'example.net'))}"


def _fake_ip(rng: random.Random, real: str) -> str:
    """Private 10/8 for IPv4, documentation prefix 2001:db8::/32 for IPv6."""
    if ":" in real:
        return "2001:db8:" + ":".join(f"{rng.randrange(0, 65536):x}" for _ in range(6))
    return f"10.{rng.randrange(0, 256)}.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}"


def _fake_secret(rng: random.Random, real: str) -> str:
    """Random token of similar length (8-40 chars), obviously not the original."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(rng.choice(alphabet) for _ in range(min(40, max(8, len(real)))))


def _fake_person(rng: random.Random, real: str) -> str:
    """Same script and shape: 王 → 李, 张伟 → 陈静, John Smith → Casey Walker."""
    if _HAS_CJK.search(real):
        if _surname_len(real) == len(real):
            return rng.choice(_FAKE_SURNAMES)
        given = max(1, min(2, len(real) - _surname_len(real) or 1))
        return rng.choice(_FAKE_SURNAMES) + "".join(rng.choice(_FAKE_GIVEN) for _ in range(given))
    words = real.split()
    if len(words) == 1:
        return rng.choice(_FAKE_EN_LAST if real not in _EN_GIVEN else _FAKE_EN_FIRST)
    return " ".join([rng.choice(_FAKE_EN_FIRST)] + [rng.choice(_FAKE_EN_LAST) for _ in words[1:]])


def _fake_address(rng: random.Random, real: str) -> str:
    """A plausible but fictional address in the same language."""
    if _HAS_CJK.search(real):
        city, district = rng.choice(_FAKE_CITIES)
        return f"{city}市{district}区{rng.choice(_FAKE_ROADS)}路{rng.randrange(1, 999)}号"
    return f"{rng.randrange(1, 9999)} {rng.choice(_FAKE_EN_STREETS)} {rng.choice(('Street', 'Avenue', 'Road', 'Lane'))}"


_FAKERS: dict[str, Callable[[random.Random, str], str]] = {
    "CN_ID": _fake_cn_id, "PHONE": _fake_phone, "BANK_CARD": _fake_card, "USCC": _fake_uscc,
    "PASSPORT": _fake_passport, "EMAIL": _fake_email, "IP": _fake_ip, "URL_SECRET": _fake_secret,
    "PERSON": _fake_person, "ADDRESS": _fake_address,
}


def normalize_value(pii_type: str, value: str) -> str:
    """Canonical form used as the pseudonym/hash key, so `138 1234 5678` and `+8613812345678` agree."""
    if pii_type in ("PHONE", "BANK_CARD"):
        digits = re.sub(r"\D", "", value)
        if pii_type == "PHONE" and len(digits) > 11 and re.fullmatch(r"(?:0086|86)1[3-9]\d{9}", digits):
            return digits[-11:]
        if pii_type == "PHONE" and len(digits) == 11 and _is_nanp(value):
            return digits[1:]
        return digits
    if pii_type in ("CN_ID", "USCC", "PASSPORT"):
        return re.sub(r"[ -]", "", value).upper()
    if pii_type == "EMAIL":
        return value.lower()
    if pii_type == "IP":
        return str(ipaddress.ip_address(value))
    return " ".join(value.split())
