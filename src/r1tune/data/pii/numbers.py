"""Detectors of numeric and structured PII: resident IDs, phones, cards, USCC, passports, e-mail, IPs, URL secrets."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from r1tune.data.pii.checksums import _card_network_ok, is_valid_cn_id, is_valid_uscc, luhn_valid
from r1tune.data.pii.text import (
    _ID_CONTEXT,
    _NA,
    _NB,
    Cand,
    _last_cue_is_id,
    _near,
    _skip_number,
)

_CN_ID18_RE = re.compile(_NB + r"[1-9]\d{5}[ -]?(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])[ -]?\d{3}[\dXx]" + _NA)
_CN_ID15_RE = re.compile(_NB + r"[1-9]\d{5}\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}" + _NA)


def _find_cn_id(text: str) -> Iterator[Cand]:
    """18-digit IDs (checksum + date) score 1.0; 15-digit legacy IDs 0.6, or 0.85 next to an ID cue."""
    for m in _CN_ID18_RE.finditer(text):
        compact = m.group().replace(" ", "").replace("-", "")
        if len(compact) == 18 and is_valid_cn_id(compact) and not _skip_number(text, m.start(), m.end()):
            yield m.start(), m.end(), "CN_ID", 1.0
    for m in _CN_ID15_RE.finditer(text):
        if is_valid_cn_id(m.group()) and not _skip_number(text, m.start(), m.end()):
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
        if not _skip_number(text, m.start(), m.end()):
            yield m.start(), m.end(), "PHONE", _PHONE_SCORES[kind]


# A run of digit groups with one separator kind (space or dash): cards are written 4-4-4-4(-3), 6-13, 6-10,
# or unbroken. The card is looked for inside the run, so neighbouring numbers joined by the same separator
# ("卡号622202 6696017937862 2024") are not swallowed.
_DIGIT_GROUPS_RE = re.compile(_NB + r"\d+(?:(?P<sep>[ -])\d+(?:(?P=sep)\d+){0,6})?" + _NA)
_CARD_CONTEXT = re.compile(r"卡号|银行卡|信用卡|储蓄卡|借记卡|账号|(?i:card|account|acct)")


def _card_in_groups(groups: list[str]) -> tuple[int, int] | None:
    """(first, last) group indices of the card in a run of digit groups: the leftmost, then longest, run of
    consecutive groups with 16-19 digits, a first group of 3+ digits (19-digit cards are also printed 3-4-4-4-4),
    inner groups of 3+, a real card-network prefix and a valid Luhn check digit."""
    for first in range(len(groups)):
        if len(groups[first]) < 3:
            continue
        best = None
        digits = ""
        for last in range(first, len(groups)):
            if last > first and last < len(groups) - 1 and len(groups[last]) < 3:
                break
            digits += groups[last]
            if len(digits) > 19:
                break
            if len(digits) >= 16 and _card_network_ok(digits) and luhn_valid(digits):
                best = (first, last)
        if best is not None:
            return best
    return None


def _find_bank_card(text: str) -> Iterator[Cand]:
    """16-19 digit Luhn-valid numbers with a real card-network prefix (not order/tracking ids), written
    unbroken or in any grouping."""
    for m in _DIGIT_GROUPS_RE.finditer(text):
        sep = m.group("sep")
        if m.end() - m.start() < 16:
            continue  # fewer than 16 characters cannot hold 16 digits (most runs: dates, amounts, ids)
        groups = m.group().split(sep) if sep else [m.group()]
        found = _card_in_groups(groups)
        if found is None:
            continue
        first, last = found
        offsets = [0]
        for g in groups:
            offsets.append(offsets[-1] + len(g) + 1)
        start, end = m.start() + offsets[first], m.start() + offsets[last + 1] - 1
        if _skip_number(text, start, end) or _last_cue_is_id(text, start):
            continue
        yield start, end, "BANK_CARD", 1.0 if _near(_CARD_CONTEXT, text, start) else 0.95


_USCC_RE = re.compile(_NB + r"[0-9A-HJ-NPQRTUWXY]{18}" + _NA)


_USCC_CONTEXT = re.compile(r"信用代码|社会信用|税号|纳税人识别号|营业执照|(?i:uscc|credit code|tax id)")


def _find_uscc(text: str) -> Iterator[Cand]:
    """USCCs whose GB 32100 check verifies; all-digit ones need a cue (2-3% of random 18-digit ids pass)."""
    for m in _USCC_RE.finditer(text):
        code = m.group()
        if not is_valid_uscc(code) or _skip_number(text, m.start(), m.end()):
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
        if not _skip_number(text, m.start(), m.end()):
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
