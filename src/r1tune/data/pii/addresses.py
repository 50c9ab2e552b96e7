"""Chinese and English street-address detectors."""

from __future__ import annotations

import re
from collections.abc import Iterator

from r1tune.data.pii.text import _CJK, _NB, Cand

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
