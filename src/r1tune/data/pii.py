"""Find and mask personal data (PII) in Chinese and English training text before it reaches a model.

Why this module exists: fine-tuning data from banks, hospitals and shops is full of ID numbers, phones, card
numbers, names and addresses, and a model that memorises them can leak them. Generic tools miss Chinese
formats (no resident-ID or USCC recognisers, `\\b` never fires between a CJK character and a digit, 19-digit
UnionPay cards are not covered), so everything here is hand-written regex plus checksum validation:

* Numbers are only PII when their checksum/structure says so (GB 11643 ID check char + real birth date,
  Luhn + card-network prefix, GB 32100 USCC check char). Order numbers, timestamps, prices and invalid
  look-alikes therefore survive; a "last cue wins" look-back (订单号/Order #/tracking ... vs 电话/卡号/ID)
  keeps numbers labelled as order/tracking/serial numbers unmasked.
* Boundaries are `(?<![0-9A-Za-z])...(?![0-9A-Za-z])`, never `\\b`, so `电话13812345678` is found.
* Full-width ASCII (`１３８…`, `＠`) is folded to half-width before matching; offsets map 1:1.
* Names use cues (姓名/联系人/先生/女士/经理, Mr./Dear/"my name is"/signatures) and jieba only on a small
  window around a cue, so texts without cues never pay for segmentation. Full jieba `nr` scanning is
  opt-in (`zh_name_scan=True`) because it is slower and less precise.

Decisions worth knowing (see also tests/data/pii_cases.jsonl):
* IPv4 with all single-digit octets (`1.2.3.4`) is read as a version/section number unless IP context
  (ip/host/server/服务器/地址) is near; `v1.2.3.4` or "version 1.2.3.4" is never an IP; loopback
  (127.x), 0.0.0.0 and 255.255.255.255 are not personal and are kept.
* Company hotlines (400/800/955xx, NANP N00/N11) are not personal and are not detected.
* Cards need Luhn *and* a real network prefix (2/3/4/5/6, 95 for legacy domestic cards), so a Luhn-valid
  timestamp or order id starting with 1/20xx/7/8 is not a card; a number right after an ID cue is never a card.
* All-digit USCCs need a cue (信用代码/税号/USCC ...): ~2-3% of random 18-digit ids pass the check char.
* A number directly followed by 元/万/亿/%/RMB/USD is an amount, never an identifier.
* PERSON spans exclude titles: `王先生` masks `王`, `Dr. Jane Doe` masks `Jane Doe`.
* URL_SECRET masks only the secret value (`?token=<here>`, `https://user:<here>@host`).
"""

from __future__ import annotations

import bisect
import datetime as _dt
import hashlib
import hmac
import ipaddress
import json
import os
import random
import re
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from r1tune.data.records import Message, Record
from r1tune.errors import DataError, R1TuneError

PII_TYPES: tuple[str, ...] = (
    "CN_ID", "PHONE", "BANK_CARD", "USCC", "PASSPORT", "EMAIL", "IP", "URL_SECRET", "PERSON", "ADDRESS",
)
Strategy = Literal["placeholder", "pseudonym", "hash"]


@dataclass(frozen=True)
class PiiSpan:
    """One detected PII value: `text[start:end]` of the *original* text, its type and a confidence in [0, 1]."""

    start: int
    end: int
    type: str
    text: str
    score: float


# --------------------------------------------------------------------------------------------------
# Checksums and validators (public so the data tools and tests can reuse them)
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# Shared regex pieces and helpers
# --------------------------------------------------------------------------------------------------

_NB = r"(?<![0-9A-Za-z])"
_NA = r"(?![0-9A-Za-z])"
_CJK = "\u4e00-\u9fff"
_HAS_CJK = re.compile(f"[{_CJK}]")
_HAS_DIGIT = re.compile(r"\d")
_FULLWIDTH = re.compile("[\uff10-\uff19\uff20-\uff3a\uff41-\uff5a]")  # digits, letters, @: rare, worth folding
_HALFWIDTH_TABLE = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}

# Look-back cues: the *last* cue before a number decides whether it is an order/tracking id (skip) or PII.
_NEG_CUES = (
    r"订单号码|订单编号|订单号|订单|单号码|单号|运单|快递|物流|流水号|交易号|交易编号|编号|工单|发票号|发票|批次号|批次|"
    r"型号|货号|条码|序列号|商品码|券码|验证码|"
    r"(?<![A-Za-z])(?i:order\s*(?:no|id|number)?|tracking(?:\s*(?:no|number))?|invoice|ref(?:erence)?|serial|sku|"
    r"txn|transaction|ticket|case|batch|model|item|part|waybill|shipment|awb|po|imei|meid|imsi|iccid)(?![a-z])"
)
_POS_CUES = (
    r"身份证号码|身份证号|证件编号|证件号码|证件号|电话|手机|号码|联系|致电|拨打|卡号|银行卡|信用卡|储蓄卡|借记卡|账号|账户|"
    r"身份证|证件|公民身份|护照|信用代码|税号|纳税人识别号|"
    r"(?<![A-Za-z])(?i:phone|mobile|tel|call|fax|card|account|acct|id\s*(?:no|number)?|passport|ssn)(?![a-z])"
)
_CUE_RE = re.compile(f"(?P<pos>{_POS_CUES})|(?P<neg>{_NEG_CUES})")
_CUE_WINDOW = 18


_AMOUNT_UNIT = re.compile(r"\s?(?:元|块|万|亿|角|%|‰|(?i:rmb|cny|usd|yuan|dollars?)(?![A-Za-z]))")


def _is_amount(text: str, end: int) -> bool:
    """A number directly followed by a currency/percent unit is an amount, not an identifier."""
    return _AMOUNT_UNIT.match(text, end) is not None


def _negative_context(text: str, start: int) -> bool:
    """True if the closest cue before `start` says this number is an order/tracking/serial id."""
    last = None
    for m in _CUE_RE.finditer(text, max(0, start - _CUE_WINDOW), start):
        last = m
    return last is not None and last.lastgroup == "neg"


def _last_cue_is_id(text: str, start: int) -> bool:
    """True if the closest cue is an identity-document cue (身份证/证件/ID): then a number is not a card."""
    last = None
    for m in _CUE_RE.finditer(text, max(0, start - _CUE_WINDOW), start):
        last = m
    return last is not None and last.lastgroup == "pos" and _ID_CONTEXT.match(last.group()) is not None


def _skip_number(text: str, m: re.Match[str]) -> bool:
    """Numbers labelled as order/tracking ids, or followed by a currency unit, are not PII."""
    return _negative_context(text, m.start()) or _is_amount(text, m.end())


def _near(pattern: re.Pattern[str], text: str, start: int, window: int = 20) -> bool:
    """True if `pattern` occurs in the `window` characters before `start` (context boost)."""
    return pattern.search(text, max(0, start - window), start) is not None


def _to_halfwidth(text: str) -> str:
    """Fold full-width ASCII (１３８, ＠, （, ：) to half-width; same length, so offsets stay valid.

    Only texts with full-width digits/letters/@ are folded: Chinese punctuation alone (，：（）) is common and
    the detectors accept it directly, so most texts skip the per-character translate.
    """
    return text.translate(_HALFWIDTH_TABLE) if _FULLWIDTH.search(text) else text


Cand = tuple[int, int, str, float]  # (start, end, type, score)


# --------------------------------------------------------------------------------------------------
# Numeric and structured detectors
# --------------------------------------------------------------------------------------------------

_CN_ID18_RE = re.compile(_NB + r"[1-9]\d{5}[ -]?(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])[ -]?\d{3}[\dXx]" + _NA)
_CN_ID15_RE = re.compile(_NB + r"[1-9]\d{5}\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}" + _NA)
_ID_CONTEXT = re.compile(r"身份证|证件|公民身份|(?i:\bid\b|identity)")


def _find_cn_id(text: str) -> Iterator[Cand]:
    """18-digit IDs (checksum + date) score 1.0; 15-digit legacy IDs 0.6, or 0.85 next to an ID cue."""
    for m in _CN_ID18_RE.finditer(text):
        compact = m.group().replace(" ", "").replace("-", "")
        if len(compact) == 18 and is_valid_cn_id(compact) and not _skip_number(text, m):
            yield m.start(), m.end(), "CN_ID", 1.0
    for m in _CN_ID15_RE.finditer(text):
        if is_valid_cn_id(m.group()) and not _skip_number(text, m):
            yield m.start(), m.end(), "CN_ID", 0.85 if _near(_ID_CONTEXT, text, m.start()) else 0.6


_AREA = r"(?:10|2\d|[3-9]\d{2})"  # 010 Beijing, 02x big cities, 0xxx elsewhere
_PHONE_RE = re.compile(
    r"(?<![0-9A-Za-z+])(?:"
    # CN mobile: 138 1234 5678 / 138-1234-5678 / +86 / 0086 / 86- / (+86)
    r"(?P<mobile>(?:[(（]\+?86[)）][ -]?|(?:\+|00)86[ -]?|86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4})"
    # CN landline: 010-12345678 / (021) 1234 5678 / +86 10 6552 9988
    rf"|(?P<landline>(?:(?:\+|00)86[ -]?(?:[(（]0?{_AREA}[)）]|0?{_AREA})[ -]?|[(（]0{_AREA}[)）][ -]?|0{_AREA}[ -])"
    r"[1-9]\d{2,3}[ -]?\d{4})"
    # North America: +1 415-555-0132 / (415) 555-0132 / 415.555.0132 (no N00 toll-free, no N11)
    r"|(?P<nanp>(?:\+?1[ .-]?)?(?:[(（](?!\d00|\d11)[2-9]\d{2}[)）][ ]?|(?!\d00|\d11)[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}"
    r"|\+1[ -]?(?!\d00|\d11)[2-9]\d{9})"
    # other countries, only when written with '+CC'
    r"|(?P<intl>\+(?!86|1)[2-9]\d{0,2}(?:[ -]?[(（]?\d{1,4}[)）]?){2,5})"
    # unseparated CN landline 01065529988: only next to a phone cue
    rf"|(?P<plain>0{_AREA}[2-8]\d{{6,7}})"
    r")" + _NA
)
_PHONE_SCORES = {"mobile": 0.9, "landline": 0.85, "nanp": 0.85, "intl": 0.75, "plain": 0.7}
_PHONE_CONTEXT = re.compile(r"电话|座机|手机|致电|拨打|传真|(?i:tel|phone|call|fax)")


def _find_phone(text: str) -> Iterator[Cand]:
    """Chinese mobiles/landlines, NANP and '+CC' international numbers in their common written forms."""
    for m in _PHONE_RE.finditer(text):
        kind = m.lastgroup or "mobile"
        if kind == "intl" and not 8 <= sum(c.isdigit() for c in m.group()) <= 15:
            continue
        if kind == "plain" and not _near(_PHONE_CONTEXT, text, m.start(), 12):
            continue
        if not _skip_number(text, m):
            yield m.start(), m.end(), "PHONE", _PHONE_SCORES[kind]


_CARD_RE = re.compile(_NB + r"(?:\d{4}[ -]){3}\d{4}(?:[ -]?\d{1,3})?" + _NA + "|" + _NB + r"\d{16,19}" + _NA)
_CARD_CONTEXT = re.compile(r"卡号|银行卡|信用卡|储蓄卡|借记卡|账号|(?i:card|account|acct)")


def _card_groups_ok(raw: str) -> bool:
    """Grouped cards use one separator kind and 4-digit groups (a short last group for 17-19 digits)."""
    seps = {c for c in raw if not c.isdigit()}
    if len(seps) > 1:
        return False
    if not seps:
        return True
    groups = raw.split(seps.pop())
    return all(len(g) == 4 for g in groups[:-1]) and 1 <= len(groups[-1]) <= 4


def _find_bank_card(text: str) -> Iterator[Cand]:
    """16-19 digit Luhn-valid numbers with a real card-network prefix (not order/tracking ids)."""
    for m in _CARD_RE.finditer(text):
        raw = m.group()
        digits = re.sub(r"\D", "", raw)
        if not 16 <= len(digits) <= 19 or not _card_groups_ok(raw) or not _card_network_ok(digits):
            continue
        if luhn_valid(digits) and not _skip_number(text, m) and not _last_cue_is_id(text, m.start()):
            yield m.start(), m.end(), "BANK_CARD", 1.0 if _near(_CARD_CONTEXT, text, m.start()) else 0.95


_USCC_RE = re.compile(_NB + r"[0-9A-HJ-NPQRTUWXY]{18}" + _NA)


_USCC_CONTEXT = re.compile(r"信用代码|社会信用|税号|纳税人识别号|营业执照|(?i:uscc|credit code|tax id)")


def _find_uscc(text: str) -> Iterator[Cand]:
    """USCCs whose GB 32100 check verifies; all-digit ones need a cue (2-3% of random 18-digit ids pass)."""
    for m in _USCC_RE.finditer(text):
        code = m.group()
        if not is_valid_uscc(code) or _skip_number(text, m):
            continue
        if code.isdigit() and not _near(_USCC_CONTEXT, text, m.start(), 24):
            continue
        yield m.start(), m.end(), "USCC", 0.95


_PASSPORT_CN_RE = re.compile(_NB + r"(?:[EG]\d{8}|E[A-HJ-NP-Z]\d{7})" + _NA)
_PASSPORT_CUE_RE = re.compile(
    r"(?:护照|(?i:passport))(?:号码|号|编号|(?i:\s*(?:no\.?|number|#)))?\s*[:：#]?\s*(?:是|为|(?i:is)\s)?\s*"
    r"(?P<num>[A-Z]{1,2}\d{6,9}|\d{9})" + _NA
)


def _find_passport(text: str) -> Iterator[Cand]:
    """Chinese E/G passports anywhere; other common passport shapes only right after a passport cue."""
    for m in _PASSPORT_CN_RE.finditer(text):
        if not _skip_number(text, m):
            yield m.start(), m.end(), "PASSPORT", 0.8
    for m in _PASSPORT_CUE_RE.finditer(text):
        yield m.start("num"), m.end("num"), "PASSPORT", 0.9


_EMAIL_RE = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)
_URL_USERINFO_TAIL = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,15}://[^\s/@]*$")


def _find_email(text: str) -> Iterator[Cand]:
    """E-mail addresses; ASCII local parts keep CJK labels like 邮箱 out of the span."""
    for m in _EMAIL_RE.finditer(text):
        if _URL_USERINFO_TAIL.search(text, max(0, m.start() - 200), m.start()):
            continue  # `scheme://user:pass@host`: the password is a URL_SECRET, not an e-mail
        yield m.start(), m.end(), "EMAIL", 1.0


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4_RE = re.compile(r"(?<![0-9A-Za-z.])" + rf"{_OCTET}(?:\.{_OCTET}){{3}}" + r"(?![0-9A-Za-z]|\.\d)")
_IPV6_RE = re.compile(r"(?<![0-9A-Za-z:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}(?![0-9A-Za-z:])")
_VERSION_CONTEXT = re.compile(r"版本|(?i:version|ver\.?|release|build|firmware|固件)\s*[:：]?\s*$")
_IP_CONTEXT = re.compile(r"(?i:\bip\b|ip地址|host|server|address|addr)|服务器|地址|主机")


def _ip_context(text: str, start: int, end: int) -> bool:
    """IP/host/server words within 20 characters on either side."""
    return _IP_CONTEXT.search(text, max(0, start - 20), min(len(text), end + 20)) is not None


def _find_ip(text: str) -> Iterator[Cand]:
    """Valid IPv4/IPv6 addresses that identify a host (not versions, loopback or unspecified)."""
    for m in _IPV4_RE.finditer(text):
        ip = ipaddress.IPv4Address(m.group())
        if ip.is_loopback or ip.is_unspecified or str(ip) == "255.255.255.255":
            continue
        if _VERSION_CONTEXT.search(text[max(0, m.start() - 12):m.start()]):
            continue
        if max(len(o) for o in m.group().split(".")) == 1 and not _ip_context(text, m.start(), m.end()):
            continue  # 1.2.3.4-style section/version numbers
        yield m.start(), m.end(), "IP", 0.9
    if "::" in text or text.count(":") >= 7:
        yield from _find_ipv6(text)


def _find_ipv6(text: str) -> Iterator[Cand]:
    """IPv6 candidates validated by `ipaddress`; needs 7 colons or '::' with >= 4 hex digits."""
    for m in _IPV6_RE.finditer(text):
        raw = m.group()
        if raw.count(":") < 7 and ("::" not in raw or sum(c not in ":." for c in raw) < 4):
            continue
        try:
            ip = ipaddress.IPv6Address(raw)
        except ValueError:
            continue
        if not (ip.is_loopback or ip.is_unspecified):
            yield m.start(), m.end(), "IP", 0.9


_SECRET_KEYS = (
    r"access_token|refresh_token|id_token|auth_token|token|api_key|apikey|api-key|client_secret|app_secret|"
    r"secret_key|secret|password|passwd|pwd|sig|signature|x-amz-signature|x-amz-security-token|"
    r"sessionid|session_id|session|private_key|jwt"
)
_URL_PARAM_RE = re.compile(
    r"(?:(?<![A-Za-z0-9_-])(?i:" + _SECRET_KEYS + r")|(?<=[?&;])(?i:key|auth|code_verifier))"
    r"=(?P<val>[A-Za-z0-9._~%+/=-]+)"
)
# Scheme anchored at a token start and length-capped, so long letter runs cannot make the scan quadratic.
_BASIC_AUTH_RE = re.compile(
    r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,15}://[^\s/:@]{0,64}:(?P<val>[^\s/@]{1,256})@[A-Za-z0-9.-]"
)
_PLACEHOLDER_RE = re.compile(
    r"(?:\*+|[xX]{3,}|\.{3}|<[^>]*>|\{[^}]*\}|\$\{?\w+\}?|%\w+%|(?i:your[_-]?\w*|redacted|changeme|null|none))$"
)


def _find_url_secret(text: str) -> Iterator[Cand]:
    """Secret query/assignment values and basic-auth passwords; only the secret part is reported."""
    for regex in (_URL_PARAM_RE, _BASIC_AUTH_RE) if "://" in text else (_URL_PARAM_RE,):
        for m in regex.finditer(text):
            val = m.group("val").rstrip(".")
            if val and not _PLACEHOLDER_RE.match(val):
                yield m.start("val"), m.start("val") + len(val), "URL_SECRET", 0.95


# --------------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------------

_ZH_SURNAMES_1 = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
    "姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温"
    "康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂"
    "成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党"
    "宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝官封谈"
    "匡鞠惠荆乐冀郁胥南班储原栗燕楚鄢劳谌奚皮粟冼蔺楼盘满闻位厉伊仝区郜海阚花权强帅屠豆朴盖练廉禹井祖漆巴丰"
    "支卿国狄平计索宣晋相初门云容敬来扈晁芮都普阙浦戈伏鹿薄邸雍辜羊母裘亓修邰赫杭况那宿鲜印逯隆茹诸战慕危玉"
    "银亢嵇公湛宾戎勾茅利於呼居揭干尉冶斯元束檀衣信展阴昝智幸奉植衡富尧闭由洪"
)
_ZH_SURNAMES_2 = frozenset(
    "欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 轩辕 令狐 端木 独孤 南宫 西门 百里 "
    "呼延 澹台 第五 申屠 钟离 闻人 赫连 万俟".split()
)
# Characters that, before an honorific, are almost always function words ("我和先生", "由先生").
_ZH_NOT_SURNAME_HERE = frozenset("和与及跟同在是的由从向对给被把为于但而或且都也还就又各每该本此这那哪某诸其您你我他她它请让叫问谢找帮令贵位全明国来时成海利")
_ZH_HONORIFICS = (
    "先生 女士 小姐 太太 夫人 总经理 副总 经理 总监 主任 老师 医生 医师 大夫 护士长 护士 教授 律师 师傅 老板 董事长 "
    "处长 科长 局长 院长 校长 部长 书记 博士 同学 阿姨 叔叔 工程师 总 工".split()
)
_ZH_HONORIFIC_RE = re.compile("|".join(sorted(_ZH_HONORIFICS, key=len, reverse=True)))
_ZH_NAME_CUES = (
    "姓名 名字 联系人 紧急联系人 收件人 收货人 寄件人 患者 病人 就诊人 客户 顾客 户名 持卡人 开户人 开户名 账户名 "
    "经办人 负责人 法定代表人 法人代表 法人 申请人 借款人 担保人 投保人 被保险人 受益人 乘客 住户 业主 员工 签名 "
    "签字 我叫 我是 叫做 名叫 本人 家属 监护人 主治医生 主治医师 收款人 付款人 代理人 委托人 当事人 承租人 出租人 "
    "买方 卖方 甲方 乙方 客户经理 店长 销售顾问 客服专员 对接人 联络人 "
    "请联系 联系 通知 转告 感谢 谢谢 拜访 致电 请教 转交 交给 告诉".split()
)
_ZH_CUE_RE = re.compile(
    "(?:" + "|".join(sorted(_ZH_NAME_CUES, key=len, reverse=True)) + r")(?:是|为)?[:：]?[ \t]*(?=[" + _CJK + "A-Z])"
)
_ZH_CUE_PREFILTER = re.compile(
    "|".join(sorted({c[:2] for c in _ZH_NAME_CUES} | set(_ZH_HONORIFICS), key=len, reverse=True))
)
_ZH_STOP_AFTER_NAME = re.compile("电话|手机|先生|女士|小姐|身份|证件|地址|性别|年龄|联系|邮箱|您好|你好")
_LATIN_NAME_RE = re.compile(r"[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?(?: [A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?){0,2}")


@lru_cache(maxsize=1)
def _jieba() -> tuple[Any, dict[str, str]]:
    """Load jieba lazily (≈0.5 s once) and return (tokenizer, word→POS table); no download is needed."""
    import logging

    try:
        import jieba
        import jieba.posseg
    except ImportError:
        raise R1TuneError("Chinese name detection needs the jieba package",
                          hint="pip install 'jieba>=0.42.1,<0.43', or leave PERSON out of the PII types") from None

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba.dt, jieba.posseg.dt.word_tag_tab


def _segment(text: str) -> list[tuple[int, int, str | None]]:
    """jieba tokens of `text` as (start, end, dictionary POS or None for HMM-discovered words)."""
    tok, tags = _jieba()
    out, pos = [], 0
    for word in tok.cut(text, HMM=True):
        out.append((pos, pos + len(word), tags.get(word)))
        pos += len(word)
    return out


def _surname_len(s: str) -> int:
    """Length of the Chinese surname `s` starts with (2 for 欧阳, 1 for 王), or 0."""
    if s[:2] in _ZH_SURNAMES_2:
        return 2
    return 1 if s[:1] in _ZH_SURNAMES_1 else 0


_ZH_PLACE_ORG_END = frozenset("省市区县镇乡村庄局部处司行院校所站厂店馆园城路街港湾岛湖山")


def _is_cjk_name(word: str) -> bool:
    """Surname + 1-2 given characters, all CJK, no stop words inside, not ending like a place (石家庄, 高新区)."""
    sl = _surname_len(word)
    return sl > 0 and 1 <= len(word) - sl <= 2 and all("\u4e00" <= c <= "\u9fff" for c in word) \
        and word[-1] not in _ZH_PLACE_ORG_END and not _ZH_STOP_AFTER_NAME.search(word)


def _strip_honorific(word: str) -> str:
    """jieba glues titles to names ("王经理" is one nr token); return just the name part."""
    for h in _ZH_HONORIFICS:
        if word.endswith(h) and len(word) > len(h):
            return word[: -len(h)]
    return word


def _zh_name_after_cue(text: str, pos: int) -> tuple[int, int] | None:
    """Name right after a cue like 联系人：, decided from jieba tokens of a short window."""
    window = text[pos:pos + 8]
    latin = _LATIN_NAME_RE.match(text, pos)
    if latin:
        name = _trim_en_name(latin.group())
        return (pos, pos + len(name)) if name else None
    if not _surname_len(window):
        return None  # 客户满意度, 患者主诉: no surname, no need to segment
    toks = _segment(window)
    if not toks:
        return None
    s, e, tag = toks[0]
    word = _strip_honorific(window[s:e])
    if (tag is None or tag.startswith("nr")) and _is_cjk_name(word):
        return pos, pos + len(word)
    sl = _surname_len(window)
    if sl and e == sl and len(toks) > 1:  # surname split from its given name: 欧阳/娜娜, 李/某
        s2, e2, tag2 = toks[1]
        given = window[s2:e2]
        if 1 <= len(given) <= 2 and (tag2 is None or tag2.startswith("nr")) and _is_cjk_name(window[:e2]):
            return pos, pos + e2
    return None


def _zh_next_in_list(text: str, end: int) -> tuple[int, int] | None:
    """A second name joined to a found one by 和/与/及/、/跟 ("联系王小明和李华") gets the same treatment."""
    if end < len(text) and text[end] in "和与及、跟":
        return _zh_name_after_cue(text, end + 1)
    return None


def _zh_name_before_honorific(text: str, h: int, h_end: int) -> tuple[int, int] | None:
    """Name (or bare surname) right before 先生/女士/经理..., checked against jieba token boundaries."""
    lo = max(0, h - 6)
    window = text[lo:h_end]
    toks = _segment(window)
    rel_h = h - lo
    for s, e, tag in toks:
        if s < rel_h < e and e == len(window):  # one token "王经理": name glued to the title
            word = window[s:rel_h]
            if (tag is None or tag.startswith("nr")) and (_is_cjk_name(word) or _bare_surname_ok(word)):
                return lo + s, h
        if e == rel_h:  # token ends where the title starts
            word = window[s:e]
            if tag is not None and not tag.startswith("nr") and len(word) > 1:
                return None
            if _is_cjk_name(word) or _bare_surname_ok(word):
                return lo + s, h
            return None
    return None


def _honorific_plausible(text: str, h: int, h_end: int) -> bool:
    """Dictionary look-ups that rule out most title look-alikes before paying for jieba.

    A surname must start 1-3 characters before; the title must not begin a longer word (工作日, 总结) and
    must not end a non-name word (施工, 班主任).
    """
    if not any(_surname_len(text[i:]) for i in range(max(0, h - 3), h)):
        return False
    tok, tags = _jieba()
    if any(tok.FREQ.get(text[h:h_end + k], 0) > 0 for k in (1, 2) if h_end + k <= len(text)):
        return False
    for k in (1, 2):
        word = text[h - k:h_end] if h >= k else ""
        tag = tags.get(word)
        if tag is not None and not tag.startswith("nr"):
            return False
    return True


def _bare_surname_ok(word: str) -> bool:
    """A lone surname before a title (王先生) unless it is a function word (我和先生)."""
    return _surname_len(word) == len(word) and word not in _ZH_NOT_SURNAME_HERE


def _find_zh_person(text: str) -> Iterator[Cand]:
    """Chinese names next to cues (姓名/联系人/患者... before, 先生/女士/经理... after)."""
    if not _ZH_CUE_PREFILTER.search(text):
        return
    for m in _ZH_CUE_RE.finditer(text):
        span = _zh_name_after_cue(text, m.end())
        while span:
            yield span[0], span[1], "PERSON", 0.85
            span = _zh_next_in_list(text, span[1])
    for m in _ZH_HONORIFIC_RE.finditer(text):
        if not _honorific_plausible(text, m.start(), m.end()):
            continue
        span = _zh_name_before_honorific(text, m.start(), m.end())
        if span:
            yield span[0], span[1], "PERSON", 0.8


_SCAN_MAX_FREQ = 100  # jieba tags frequent words like 谢谢/银行卡/申请人 as nr; real private names are rare


def _find_zh_person_scan(text: str) -> Iterator[Cand]:
    """Opt-in: every jieba token that looks like surname+given (rare dictionary nr, or HMM-discovered)."""
    freq = _jieba()[0].FREQ
    for s, e, tag in _segment(text):
        word = text[s:e]
        if tag is None or (tag.startswith("nr") and freq.get(word, 0) <= _SCAN_MAX_FREQ):
            word = _strip_honorific(word)
            if _is_cjk_name(word):
                yield s, s + len(word), "PERSON", 0.6


_EN_GIVEN = frozenset(
    """James John Robert Michael William David Richard Joseph Thomas Charles Christopher Daniel Matthew Anthony
    Donald Steven Paul Andrew Joshua Kenneth Kevin Brian George Timothy Ronald Edward Jason Jeffrey Ryan Jacob
    Gary Nicholas Eric Jonathan Stephen Larry Justin Scott Brandon Benjamin Samuel Gregory Alexander Patrick
    Raymond Jack Dennis Jerry Tyler Aaron Jose Adam Nathan Henry Douglas Zachary Peter Kyle Noah Ethan Jeremy
    Walter Christian Keith Roger Terry Austin Sean Gerald Carl Harold Dylan Arthur Lawrence Jordan Jesse Bryan
    Billy Bruce Gabriel Joe Logan Alan Juan Albert Willie Elijah Wayne Randy Vincent Mason Roy Ralph Bobby Russell
    Bradley Philip Eugene Louis Harry Oliver Liam Lucas Leo Oscar Hugo Felix Max Simon Martin Mark Frank Tom Tim
    Mike Dave Steve Chris Nick Alex Ben Sam Dan Matt Andy Tony Rob Jim Jon Greg Ian Neil Colin Stuart Graham
    Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty Sandra Margaret
    Ashley Kimberly Emily Donna Michelle Carol Amanda Melissa Deborah Stephanie Rebecca Sharon Laura Cynthia
    Kathleen Amy Angela Shirley Anna Brenda Pamela Emma Nicole Helen Samantha Katherine Christine Debra Rachel
    Carolyn Janet Catherine Maria Heather Diane Julie Olivia Joyce Virginia Victoria Kelly Lauren Christina
    Joan Evelyn Judith Megan Andrea Cheryl Hannah Jacqueline Martha Gloria Teresa Ann Sara Madison Frances
    Kathryn Janice Jean Abigail Alice Judy Sophia Denise Doris Marilyn Danielle Beverly Isabella Theresa Diana
    Natalie Brittany Charlotte Marie Kayla Alexis Lori Sophie Chloe Grace Lucy Ella Mia Ava Zoe Amelia Jane Kate
    Claire Laura Julia Sarah Anne Annie Jenny Jen Liz Beth Sue Kim Tina Nina Lily Rose Ruby Emma Alice Irene
    Fiona Eileen Wendy Vivian Cindy Tracy Peggy Sally Jessie Kevin Jason Tony Eric Vicky Winnie Angel Jack""".split()
)
_EN_NOT_NAME = frozenset(
    """The A An And Or Of In On At To For From With By As Is Are Was Be This That These Those It Its We Our You
    Your He She They Their My Me I Mr Mrs Ms Dr Street St Road Rd Avenue Ave Lane Drive Way Boulevard Court
    Place Square Park Plaza Building Tower Floor Room Suite Unit Inc Ltd LLC Co Corp Company Group Bank Hospital
    Clinic University College School Center Centre Store Shop Mall Hotel Airport Station Airlines Team Support
    Service Services Customer Customers Client Manager Department Office Sir Madam Madame All Everyone Colleagues
    Valued Friends Friend Team Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March
    April May June July August September October November December Order Account Card Phone Email Address Name
    Thanks Thank Regards Best Sincerely Hello Hi Dear Yes No Not Please Note Total Price Product Item Date
    Time Today Tomorrow China Chinese English America American Beijing Shanghai Shenzhen Guangzhou Hong Kong
    New York London Paris Christmas Day Visa Mastercard Amex UnionPay Apple Google Microsoft Amazon River Lake
    Mountain Mountains Valley Beach Island Islands Bay Hills Falls Springs Creek Harbor Port Bridge Canyon Road
    North South East West Central Airways Pay Wallet Platinum Gold Silver Prime""".split()
)
_PINYIN_SURNAMES = frozenset(
    """Wang Li Zhang Liu Chen Yang Huang Zhao Wu Zhou Xu Sun Zhu Hu Guo Lin Gao Luo Zheng Liang Xie Song Tang
    Han Feng Deng Cao Peng Zeng Xiao Tian Dong Yuan Pan Yu Jiang Cai Du Ye Cheng Su Wei Lu Ding Ren Shen Yao
    Cui Zhong Tan Jin Shi Liao Jia Xia Bai Zou Meng Xiong Qin Qiu Yin Xue Yan Duan Lei Hou Tao Gu Mao Hao Gong
    Shao Qian Dai Mo Kong Xiang Kang Shi Ouyang Sima Zhuge""".split()
)
# Pinyin surnames that are not also common English words, so "Kelly Wu" / "Joy Chen" count but "Theme Song" doesn't.
_PINYIN_SURNAME_LAST = _PINYIN_SURNAMES - frozenset("Song Tan Pan Ding Long Fan Bai Gu Du Ye Su Yu Lu Hu Shi Jin Lei Tao".split())
_PINYIN_GIVEN_RE = re.compile(
    r"(?:(?:[zcs]h|[bpmfdtnlgkhjqxrzcsyw])?(?:iang|iong|uang|ueng|ang|eng|ing|ong|ian|iao|uai|uan|ai|ei|ao|ou|an|"
    r"en|in|un|er|ia|ie|iu|ua|uo|ui|ue|a|o|e|i|u|v)){1,2}"
)
_CAP = r"(?:[A-Z]'[A-Z][a-z]+|[A-Z][a-z]+(?:-?[A-Z][a-z]+|'[a-z]+)?)"  # Smith, O'Neil, McDonald, Smith-Jones
_EN_NAME_TAIL = rf"{_CAP}(?:[ \t]+[A-Z]\.)?(?:[ \t]+{_CAP}){{0,2}}"
_EN_TITLE_RE = re.compile(r"(?<![A-Za-z])(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Madam|Mme)\.?\s+(?P<name>" + _EN_NAME_TAIL + ")")
_EN_STRONG_CUE_RE = re.compile(
    r"(?<![A-Za-z])(?:(?i:my name is|my name's|full name|name|patient|customer|client|contact person|contact|signed by|attn|"
    r"attention|cardholder|card holder|account holder|account name|recipient|beneficiary|applicant|borrower|"
    r"guarantor|insured|passenger|guest|tenant|employee|emergency contact)\s*[:：]\s*"
    r"|(?i:my name is|my name's|signed by|account holder|cardholder|patient|customer|client|applicant|borrower)\s+"
    r"|Dear\s+)(?P<name>" + _EN_NAME_TAIL + ")"
)
_EN_WEAK_CUES = frozenset(
    "i'm|i am|this is|named|called|ask|contact|call|cc|thanks|thank you|hi|hello|hey|from|with|by|agent|"
    "colleague|to|for".split("|")
)
_EN_PREV_WORDS_RE = re.compile(r"([A-Za-z']+)(?:[ ]+([A-Za-z']+))?[ ,:]+$")
_EN_SIGNOFF_RE = re.compile(
    r"(?i:regards|best regards|kind regards|warm regards|best wishes|sincerely|yours sincerely|yours truly|"
    r"yours faithfully|cheers|thanks|many thanks|best|respectfully)[,.!]?[ \t]*\r?\n[ \t]*"
    r"(?P<name>" + _CAP + r"(?:[ \t]+" + _CAP + r"){0,2})[ \t]*(?=\r?\n|$|,)"
)
_EN_CAP_WORD_RE = re.compile(_CAP + r"(?![A-Za-z])")
_EN_BETWEEN_NAMES_RE = re.compile(r"[ \t]+(?:[A-Z]\.[ \t]+)?")
_EN_TITLE_KEYS = ("Mr", "Ms", "Dr", "Prof", "Miss", "Mx", "Madam", "Mme")
_EN_STRONG_KEYS = ("name", "patient", "customer", "client", "contact", "signed", "attn", "attention", "holder",
                   "recipient", "beneficiary", "applicant", "borrower", "guarantor", "insured", "passenger",
                   "guest", "tenant", "employee", "dear")


def _trim_en_name(name: str) -> str:
    """Drop trailing words that are not names ("John Smith Street" → too risky: keep only leading names)."""
    words = name.split()
    keep: list[str] = []
    for w in words:
        if w.rstrip(".") in _EN_NOT_NAME:
            break
        keep.append(w)
    return " ".join(keep)


_EN_NOT_PERSON_FIELD = re.compile(
    r"(?i:company|product|file|user|host|domain|brand|store|shop|bank|model|item|project|app|business|street|"
    r"city|field|column|display|screen|nick|branch|hospital|school|department|dept|merchant|vendor|org|"
    r"organization|organisation|account type|plan)[ _-]?$"
)


def _en_name_span(m: re.Match[str], need_given: bool, text: str) -> Cand | None:
    """Turn a cue match into a PERSON candidate, rejecting stop words and (for weak cues) non-given names."""
    if _EN_NOT_PERSON_FIELD.search(text, max(0, m.start() - 16), m.start()):
        return None  # "Company name: Acme", "File name: Report"
    name = _trim_en_name(m.group("name"))
    if not name or name.endswith("."):
        name = name.rsplit(" ", 1)[0] if " " in name else ""
    first = name.split(" ", 1)[0] if name else ""
    if not first or (need_given and first not in _EN_GIVEN):
        return None
    start = m.start("name")
    return start, start + len(name), "PERSON", 0.7 if need_given else 0.85


def _pinyin_given(word: str) -> bool:
    """True if a capitalised word reads as 1-2 pinyin syllables (Wei, Xiaoming, Jianguo)."""
    return _PINYIN_GIVEN_RE.fullmatch(word.lower()) is not None


def _find_en_person(text: str) -> Iterator[Cand]:
    """English (and pinyin) names from titles, strong cues, sign-offs, weak cues and name pairs.

    The cue regexes only run when a cheap substring test finds their keywords (regex scans dominate cost).
    """
    low = text.lower()
    plan = ((_EN_TITLE_RE, any(k in text for k in _EN_TITLE_KEYS)),
            (_EN_STRONG_CUE_RE, any(k in low for k in _EN_STRONG_KEYS)),
            (_EN_SIGNOFF_RE, "\n" in text))
    for regex, go in plan:
        for m in regex.finditer(text) if go else ():
            cand = _en_name_span(m, False, text)
            if cand:
                yield cand
    yield from _en_word_names(text)


def _en_word_names(text: str) -> Iterator[Cand]:
    """Walk capitalised words once: "John Smith", "Wang Fang", "Kelly Wu" pairs, and "Hi Kevin"-style cues."""
    words = [(m.start(), m.end(), m.group()) for m in _EN_CAP_WORD_RE.finditer(text)]
    used_until = -1
    for i, (s, e, w) in enumerate(words):
        if s < used_until or w in _EN_NOT_NAME:
            continue
        nxt = words[i + 1] if i + 1 < len(words) else None
        if nxt and _EN_BETWEEN_NAMES_RE.fullmatch(text, e, nxt[0]) and _is_name_pair(w, nxt[2]):
            used_until = nxt[1]
            yield s, nxt[1], "PERSON", 0.7
        elif w in _EN_GIVEN and _weak_cue_before(text, s):
            yield s, e, "PERSON", 0.7


def _is_name_pair(first: str, last: str) -> bool:
    """Given name + surname, pinyin surname + pinyin given name, or anything + a distinctive pinyin surname."""
    if last in _EN_NOT_NAME:
        return False
    return first in _EN_GIVEN or (first in _PINYIN_SURNAMES and _pinyin_given(last)) or last in _PINYIN_SURNAME_LAST


def _weak_cue_before(text: str, start: int) -> bool:
    """True if the one or two words before `start` are a weak cue such as "Hi", "thanks", "I'm", "cc:"."""
    m = _EN_PREV_WORDS_RE.search(text, max(0, start - 20), start)
    if not m:
        return False
    last = (m.group(2) or m.group(1)).lower()
    pair = f"{m.group(1)} {m.group(2)}".lower() if m.group(2) else ""
    return last in _EN_WEAK_CUES or pair in _EN_WEAK_CUES


# --------------------------------------------------------------------------------------------------
# Addresses
# --------------------------------------------------------------------------------------------------

_ZH_ADMIN = r"(?:特别行政区|自治区|自治州|自治县|街道|地区|省|市|区|县|旗|镇|乡|盟)"
_ZH_STREET = r"(?:大街|大道|胡同|小区|花园|家园|公寓|大厦|广场|新村|社区|园区|路|街|巷|弄|道|里|村|苑|庄|屯|段)"
_ZH_NUM = r"(?:[A-Za-z]?[0-9]+|[一二三四五六七八九十百]+|[A-Za-z])[-—]?(?:号楼|号院|号|弄|栋|幢|座|单元|层|楼|室|房|户|组|排)"
# A named building after the street number ("…385号太古汇商场L3层") belongs to the address too.
_ZH_BUILDING = rf"[{_CJK}]{{1,8}}?(?:商场|商厦|大厦|广场|中心|大楼|写字楼|公寓|酒店|医院|园区|花园|小区)"
_ZH_ADDR_RE = re.compile(
    rf"(?:[{_CJK}]{{1,8}}?{_ZH_ADMIN})*[{_CJK}0-9]{{1,12}}?{_ZH_STREET}(?:{_ZH_NUM}){{1,6}}"
    rf"(?:{_ZH_BUILDING}(?:{_ZH_NUM}){{1,4}})?(?:[0-9]+(?![0-9]))?"
    rf"|(?:[{_CJK}]{{1,8}}?{_ZH_ADMIN}){{2,}}[{_CJK}]{{1,6}}?(?:村|社区)"
)
_ZH_ADDR_PREFILTER = re.compile(r"[省市区县镇乡路街道巷弄村苑厦园]")
_ZH_ADDR_HEADS = (
    "北京 天津 上海 重庆 河北 山西 辽宁 吉林 黑龙江 江苏 浙江 安徽 福建 江西 山东 河南 湖北 湖南 广东 海南 四川 "
    "贵州 云南 陕西 甘肃 青海 台湾 内蒙古 广西 西藏 宁夏 新疆 香港 澳门 深圳 广州 杭州 南京 苏州 成都 武汉 西安 "
    "长沙 郑州 济南 青岛 厦门 宁波 大连 沈阳 哈尔滨 长春 合肥 福州 南昌 昆明 贵阳 南宁 太原 石家庄 兰州 乌鲁木齐 "
    "无锡 佛山 东莞 珠海 温州 常州 烟台".split()
)
_ZH_ADDR_CUE_RE = re.compile(r"地址是|地址为|地址|住址|住在|家住|位于|寄到|送到|发到|寄往|寄至|送至|搬到|来自|[在是于到往至为住寄送去的]")
_ZH_STREET_GENERIC = re.compile(r"(?:线|电|道|思|网|出|走|迷|一|公|马|铁|水|航|管|通|门|回)路$")


def _trim_zh_address(text: str, s: int, e: int) -> int:
    """Move the start past leading non-address words ("我住北京市…" → "北京市…", "家住幸福小区" → "幸福小区")."""
    head = text[s:e]
    first_suffix = re.search(_ZH_ADMIN + "|" + _ZH_STREET, head)
    limit = first_suffix.start() if first_suffix else len(head)
    best = min((head.find(p) for p in _ZH_ADDR_HEADS if 0 <= head.find(p) <= limit), default=-1)
    if best >= 0:
        return s + best
    cues = [m.end() for m in _ZH_ADDR_CUE_RE.finditer(head, 0, max(0, limit - 1))]
    return s + cues[-1] if cues else s


def _zh_address_ok(addr: str) -> bool:
    """Street-level only: admin part or a real street name (not 线路1号 / 11月3号)."""
    street = re.search(rf"[{_CJK}0-9]+?{_ZH_STREET}(?={_ZH_NUM})", addr)
    has_admin = re.match(rf"[{_CJK}]{{1,8}}?{_ZH_ADMIN}", addr) is not None
    if street is None:
        return addr.endswith(("村", "社区")) and has_admin
    name = street.group()
    if has_admin:
        return True
    return len(name) >= 3 and not _ZH_STREET_GENERIC.search(name)


_ZH_NUM_ANCHOR = re.compile(r"[0-9A-Za-z一二三四五六七八九十百][-—]?[号弄栋幢座单元层楼室房户组排]")
_ZH_ADDR_REACH = 60  # an address starts at most this many characters before its first number part


def _zh_address_window(text: str) -> tuple[int, int] | None:
    """Region that can hold an address: around number parts (3号, 2单元), or everything if a 村 is named."""
    if "村" in text or "社区" in text:
        return 0, len(text)
    anchors = [m.start() for m in _ZH_NUM_ANCHOR.finditer(text)]
    if not anchors:
        return None
    return max(0, anchors[0] - _ZH_ADDR_REACH), min(len(text), anchors[-1] + 40)


def _find_zh_address(text: str) -> Iterator[Cand]:
    """Chinese addresses down to street/building level (省/市/区/县 … 路/街/小区 … 号/栋/单元/室)."""
    window = _zh_address_window(text) if _ZH_ADDR_PREFILTER.search(text) else None
    if window is None:
        return
    for m in _ZH_ADDR_RE.finditer(text, *window):
        s = _trim_zh_address(text, m.start(), m.end())
        if _zh_address_ok(text[s:m.end()]):
            yield s, m.end(), "ADDRESS", 0.75


_EN_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Parkway|Pkwy|"
    r"Highway|Hwy|Square|Sq|Circle|Cir|Trail|Crescent|Close)"
)
_EN_ADDR_RE = re.compile(
    _NB + r"\d{1,6}[A-Za-z]?(?:\s+[NSEW]\.?)?(?:\s+(?:[A-Z][A-Za-z'-]*|\d{1,3}(?:st|nd|rd|th))){1,4}\s+"
    + _EN_STREET_SUFFIX + r"(?![A-Za-z])"
    r"(?:\.?,?\s+(?:Apt|Apartment|Suite|Ste|Unit|Room|Rm|Floor|Fl)\.?\s*#?[A-Za-z0-9-]*\d[A-Za-z0-9-]*|\s*#\d+[A-Za-z]?)?"
    r"(?:\.?,\s*[A-Z][a-z]+(?:\s[A-Z][a-z]+)*,?\s+[A-Z]{2}\s+\d{5}(?:-\d{4})?)?(?![A-Za-z0-9])"
)


def _find_en_address(text: str) -> Iterator[Cand]:
    """English street addresses: number + capitalised street name + suffix (+ unit, + City, ST ZIP)."""
    for m in _EN_ADDR_RE.finditer(text):
        yield m.start(), m.end(), "ADDRESS", 0.75


# --------------------------------------------------------------------------------------------------
# Detection driver
# --------------------------------------------------------------------------------------------------

_Finder = Callable[[str], Iterator[Cand]]
_HAS_LATIN_UPPER = re.compile(r"[A-Z]")
_TYPE_PRIORITY = {t: i for i, t in enumerate(PII_TYPES)}


_DIGIT_RUN = re.compile(r"\d{3,}")


def _digit_profile(text: str) -> tuple[int, int, int]:
    """(longest digit run, runs of >= 3 digits, runs of exactly 4): one scan decides which number finders run."""
    runs = [len(r) for r in _DIGIT_RUN.findall(text)]
    return max(runs, default=0), len(runs), runs.count(4)


def _applicable_finders(text: str, types: frozenset[str], zh_name_scan: bool) -> list[_Finder]:
    """Cheap prefilters: only run the detectors whose trigger characters occur in the text."""
    digit, cjk = bool(_HAS_DIGIT.search(text)), bool(_HAS_CJK.search(text))
    upper = bool(_HAS_LATIN_UPPER.search(text))
    longest, n_runs, n_fours = _digit_profile(text) if digit else (0, 0, 0)
    plan: list[tuple[str, bool, _Finder]] = [
        ("CN_ID", longest >= 6, _find_cn_id),
        ("PHONE", longest >= 7 or n_runs >= 2, _find_phone),
        ("BANK_CARD", longest >= 16 or n_fours >= 3, _find_bank_card),
        ("USCC", longest >= 6, _find_uscc),
        ("PASSPORT", longest >= 6, _find_passport),
        ("EMAIL", "@" in text, _find_email),
        ("IP", digit and ("." in text or ":" in text), _find_ip),
        ("URL_SECRET", "=" in text or "://" in text, _find_url_secret),
        ("PERSON", cjk, _find_zh_person_scan if zh_name_scan else _find_zh_person),
        ("PERSON", zh_name_scan and cjk, _find_zh_person),
        ("PERSON", upper, _find_en_person),
        ("ADDRESS", cjk, _find_zh_address),
        ("ADDRESS", digit and upper, _find_en_address),
    ]
    return [f for t, go, f in plan if go and t in types]


def _resolve(cands: list[Cand]) -> list[Cand]:
    """Keep the best non-overlapping candidates: higher score, then longer, then earlier type in PII_TYPES."""
    ranked = sorted(cands, key=lambda c: (-c[3], -(c[1] - c[0]), _TYPE_PRIORITY[c[2]], c[0]))
    starts: list[int] = []
    taken: list[Cand] = []  # kept sorted by start; neighbours found by bisection (long texts have 1000s of spans)
    for c in ranked:
        i = bisect.bisect_right(starts, c[0])
        if c[1] > c[0] and (i == 0 or taken[i - 1][1] <= c[0]) and (i == len(taken) or taken[i][0] >= c[1]):
            starts.insert(i, c[0])
            taken.insert(i, c)
    return taken


def _check_types(types: Iterable[str] | None) -> frozenset[str]:
    """Validate a user-supplied type filter early, with the allowed names in the message."""
    if types is None:
        return frozenset(PII_TYPES)
    chosen = frozenset(types)
    unknown = chosen - set(PII_TYPES)
    if unknown:
        raise R1TuneError(f"unknown PII type(s): {', '.join(sorted(unknown))}", hint=f"use any of {', '.join(PII_TYPES)}")
    return chosen


class PiiDetector:
    """Reusable detector with a fixed type filter; `detect_pii` wraps a cached instance of this."""

    def __init__(self, types: Iterable[str] | None = None, zh_name_scan: bool = False) -> None:
        """`types` limits detection (unknown names fail fast); `zh_name_scan` adds cue-less jieba name scanning."""
        self.types = _check_types(types)
        self.zh_name_scan = zh_name_scan

    def detect(self, text: str) -> list[PiiSpan]:
        """All PII spans in `text`, non-overlapping and sorted by position."""
        if not text:
            return []
        norm = _to_halfwidth(text)
        cands: list[Cand] = []
        for finder in _applicable_finders(norm, self.types, self.zh_name_scan):
            cands.extend(finder(norm))
        return [PiiSpan(s, e, t, text[s:e], sc) for s, e, t, sc in _resolve(cands)]


@lru_cache(maxsize=64)
def _cached_detector(types: frozenset[str] | None, zh_name_scan: bool) -> PiiDetector:
    """One detector per type filter, so repeated `detect_pii` calls do no setup work."""
    return PiiDetector(types, zh_name_scan)


def detect_pii(text: str, types: Iterable[str] | None = None, *, zh_name_scan: bool = False) -> list[PiiSpan]:
    """Find PII in `text`; `types` limits the search (e.g. skip PERSON/ADDRESS for speed or recall trade-offs)."""
    key = None if types is None else frozenset(types)
    return _cached_detector(key, zh_name_scan).detect(text)


# --------------------------------------------------------------------------------------------------
# Pseudonyms: realistic, checksum-valid fakes derived from a keyed hash of the real value
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# Masker
# --------------------------------------------------------------------------------------------------


class PiiMasker:
    """Replace detected PII with placeholders, consistent pseudonyms, or salted short hashes.

    * placeholder: `[PHONE]` — nothing to learn from, nothing to leak.
    * pseudonym: the same real value always becomes the same realistic fake within this masker (and across
      maskers sharing a salt); distinct values get distinct fakes. Without a salt a random one is drawn, so
      fakes cannot be reversed by hashing every phone number, but are only stable inside this masker.
    * hash: `[PHONE:3fa2c1]` — HMAC-SHA256(salt, type+value); joins stay possible, values are not recoverable.
      A salt is required: an unsalted hash of an 11-digit phone is reversed by brute force in seconds.
      6 hex digits (24 bits) collide with 50% probability among ~4,800 distinct values of one type; raise
      `hash_len` when hashes are used to join records.

    Values are normalised before pseudonyms/hashes (`138 1234 5678` == `+86 13812345678`). The pseudonym
    strategy keeps one map entry per distinct value (memory grows with the number of distinct values).
    """

    def __init__(self, strategy: Strategy = "placeholder", salt: str = "", types: Iterable[str] | None = None,
                 *, zh_name_scan: bool = False, hash_len: int = 6) -> None:
        """Validate the strategy early; the hash strategy refuses to run without a secret salt."""
        if not 4 <= hash_len <= 64:
            raise R1TuneError(f"hash_len must be between 4 and 64, got {hash_len}")
        self.hash_len = hash_len
        if strategy not in ("placeholder", "pseudonym", "hash"):
            raise R1TuneError(f"unknown PII masking strategy {strategy!r}", hint="use placeholder, pseudonym or hash")
        if strategy == "hash" and not salt:
            raise R1TuneError("the hash strategy needs a secret salt",
                              hint="pass salt=... (keep it secret; reuse it to get the same hashes across runs)")
        self.strategy = strategy
        self.detector = PiiDetector(types, zh_name_scan)
        self._key = (salt or secrets.token_hex(16)).encode("utf-8")
        self.counts: Counter[str] = Counter()
        self._fakes: dict[tuple[str, str], str] = {}
        self._used: set[tuple[str, str]] = set()

    def mask(self, text: str) -> tuple[str, list[PiiSpan]]:
        """Return the masked text and the spans (offsets refer to the input text)."""
        spans = self.detector.detect(text)
        if not spans:
            return text, spans
        parts, pos = [], 0
        for sp in spans:
            parts.append(text[pos:sp.start])
            parts.append(self._replacement(sp))
            pos = sp.end
            self.counts[sp.type] += 1
        parts.append(text[pos:])
        return "".join(parts), spans

    def _digest(self, pii_type: str, key: str, attempt: int = 0) -> bytes:
        """Keyed hash of one normalised value; `attempt` re-rolls a pseudonym on collision."""
        msg = f"{pii_type}\x00{key}\x00{attempt}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).digest()

    def _replacement(self, sp: PiiSpan) -> str:
        """Text that replaces one span under the configured strategy."""
        if self.strategy == "placeholder":
            return f"[{sp.type}]"
        key = normalize_value(sp.type, sp.text)
        if self.strategy == "hash":
            return f"[{sp.type}:{self._digest(sp.type, key).hex()[:self.hash_len]}]"
        return self.pseudonym(sp.type, sp.text, key)

    def pseudonym(self, pii_type: str, value: str, key: str | None = None) -> str:
        """Stable fake for `value`, re-shaped to the way this occurrence is written (separators, +86, case)."""
        key = key if key is not None else normalize_value(pii_type, value)
        fake_norm = self._fakes.get((pii_type, key))
        if fake_norm is None:
            fake_norm = self._new_fake(pii_type, value, key)
            self._fakes[(pii_type, key)] = fake_norm
        return _reshape(pii_type, value, fake_norm)

    def _new_fake(self, pii_type: str, value: str, key: str) -> str:
        """Draw fakes from the keyed hash until one differs from the real value and all other values' fakes."""
        fake_norm = key
        for attempt in range(64):
            seed = int.from_bytes(self._digest(pii_type, key, attempt)[:8], "big")
            fake_norm = normalize_value(pii_type, _FAKERS[pii_type](random.Random(seed), value))
            if fake_norm != key and (pii_type, fake_norm) not in self._used:
                break
        self._used.add((pii_type, fake_norm))
        return fake_norm


def _reshape(pii_type: str, value: str, fake_norm: str) -> str:
    """Write a normalised fake in the real value's shape: `+86 138-…` stays `+86 1xx-…`, `…x` stays lower-case."""
    if pii_type in ("PHONE", "BANK_CARD") and sum(c.isdigit() for c in value) >= len(fake_norm):
        return _fill_digits(value, fake_norm)
    if pii_type == "CN_ID" and value.endswith("x"):
        return fake_norm[:-1] + fake_norm[-1].lower()
    return fake_norm


# --------------------------------------------------------------------------------------------------
# Records and files
# --------------------------------------------------------------------------------------------------


def _mask_message(msg: Message, masker: PiiMasker) -> Message:
    """Mask the visible answer and the chain of thought: R1 traces repeat PII from the prompt."""
    content, _ = masker.mask(msg.content)
    reasoning = masker.mask(msg.reasoning)[0] if msg.reasoning else msg.reasoning
    return replace(msg, content=content, reasoning=reasoning)


def mask_record(record: Record, masker: PiiMasker) -> Record:
    """Masked copy of `record` (content and reasoning of every message; `meta` and `source` are kept as is).

    An auto-generated id is recomputed, because it is a hash of the unmasked text; a user-given id is kept.
    """
    messages = [_mask_message(m, masker) for m in record.messages]
    auto_id = record.id == record.content_hash()[:16]
    return Record(messages=messages, source=record.source, meta=dict(record.meta), id="" if auto_id else record.id)


def _mask_json_messages(messages: Any, masker: PiiMasker) -> None:
    """Mask content/reasoning of an OpenAI-style message list in place (unknown keys are kept).

    `content` may also be a list of parts ({"type": "text", "text": ...}); their `text` is masked.
    """
    if not isinstance(messages, list):
        return
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        for key in ("content", "reasoning", "reasoning_content"):
            if isinstance(msg.get(key), str):
                msg[key] = masker.mask(msg[key])[0]
        for part in msg["content"] if isinstance(msg.get("content"), list) else ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                part["text"] = masker.mask(part["text"])[0]


def _mask_json_object(obj: dict[str, Any], masker: PiiMasker, fields: list[str] | None) -> None:
    """Mask the chosen top-level fields; by default message texts of records, else every string field."""
    if fields is None:
        fields = ["messages"] if "messages" in obj else [k for k, v in obj.items() if isinstance(v, str)]
    for name in fields:
        value = obj.get(name)
        if name == "messages":
            _mask_json_messages(value, masker)
        elif isinstance(value, str):
            obj[name] = masker.mask(value)[0]


def _mask_line(line: str, masker: PiiMasker, fields: list[str] | None, jsonl: bool, where: str) -> str:
    """One output line (without newline) for one input line."""
    if not jsonl:
        return masker.mask(line)[0]
    if not line.strip():
        return line
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"{where}: invalid JSON ({err.msg} at column {err.colno})",
                        hint="fix or remove the line; every line of a .jsonl file must be one JSON object") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    _mask_json_object(obj, masker, fields)
    return json.dumps(obj, ensure_ascii=False)


def _read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text without newline); undecodable bytes become a DataError naming file:line."""
    with Path(path).open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                yield lineno, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise DataError(f"{path}:{lineno}: not valid UTF-8 ({err.reason})",
                                hint="re-encode the file as UTF-8") from None


def mask_file(in_path: Path, out_path: Path, masker: PiiMasker, fields: list[str] | None = None) -> dict[str, Any]:
    """Mask a .jsonl (given fields, or record messages) or any text file line by line.

    The output is written to a temporary file and moved into place only on success, so a bad line never
    leaves a half-masked file behind. Returns {"lines", "masked", "by_type"} for this file.
    """
    in_path, out_path = Path(in_path), Path(out_path)
    jsonl = in_path.suffix.lower() == ".jsonl"
    before = Counter(masker.counts)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + f".tmp{os.getpid()}")
    lines = 0
    try:
        with tmp.open("w", encoding="utf-8", newline="\n") as out:
            for lineno, line in _read_lines(in_path):
                out.write(_mask_line(line, masker, fields, jsonl, f"{in_path}:{lineno}") + "\n")
                lines += 1
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    by_type = {t: masker.counts[t] - before[t] for t in PII_TYPES if masker.counts[t] - before[t]}
    return {"lines": lines, "masked": sum(by_type.values()), "by_type": by_type}


# --------------------------------------------------------------------------------------------------
# Evaluation against labelled cases (used by tests and benchmarks/pii_eval.py)
# --------------------------------------------------------------------------------------------------


def evaluate_pii(cases: Iterable[dict[str, Any]], detector: PiiDetector | None = None) -> dict[str, dict[str, float]]:
    """Per-type precision/recall/F1 with exact (type, text) matching over `{"text", "spans"}` cases.

    A predicted span counts once against one gold span of the same type and text in the same case; a span
    with the right text but wrong type is both a false positive and a false negative.
    """
    detector = detector or PiiDetector()
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for case in cases:
        gold = Counter((s["type"], s["text"]) for s in case["spans"])
        pred = Counter((s.type, s.text) for s in detector.detect(case["text"]))
        for (t, _), n in (gold & pred).items():
            tp[t] += n
        for (t, _), n in (pred - gold).items():
            fp[t] += n
        for (t, _), n in (gold - pred).items():
            fn[t] += n
    return {t: _prf(tp[t], fp[t], fn[t]) for t in PII_TYPES}


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision/recall/F1 plus raw counts; an empty denominator counts as perfect (nothing to get wrong)."""
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "tp": tp, "fp": fp, "fn": fn}
