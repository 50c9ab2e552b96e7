"""Regex pieces and context helpers shared by the detectors: boundaries, cue look-back, full-width folding."""

from __future__ import annotations

import re

_NB = r"(?<![0-9A-Za-z])"
_NA = r"(?![0-9A-Za-z])"
_CJK = "\u4e00-\u9fff"
_ID_CONTEXT = re.compile(r"身份证|证件|公民身份|(?i:\bid\b|identity)")
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


def _skip_number(text: str, start: int, end: int) -> bool:
    """Numbers labelled as order/tracking ids, or followed by a currency unit, are not PII."""
    return _negative_context(text, start) or _is_amount(text, end)


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
