"""Person-name detectors: Chinese names around cues and honorifics (jieba on a small window), English names."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from r1tune.data.pii.text import _CJK, Cand
from r1tune.errors import R1TuneError

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
    Fiona Eileen Wendy Vivian Cindy Tracy Peggy Sally Jessie Kevin Jason Tony Eric Vicky Winnie Angel Jack
    Mohammed Muhammad Ahmed Ali Omar Hassan Fatima Aisha Layla Yasmin Priya Ravi Arjun Anil Sunil Rahul Amit
    Deepak Vikram Anjali Pooja Neha Kavya Hiroshi Takeshi Kenji Yuki Haruto Sakura Yuna Akira Min-jun Ji-woo
    Seo-yeon Carlos Juan Luis Miguel Pedro Mateo Diego Javier Alejandro Sofia Lucia Camila Valentina Isabel
    Olga Natasha Ivan Dmitri Sergei Tomasz Piotr Katarzyna Ingrid Lars Sven Astrid Hans Klaus Jurgen Pierre
    Francois Antoine Giulia Marco Luca Giovanni Chiara Nguyen Minh Thi Kwame Chinedu Amara Tunde Zainab""".split()
)
# Common surnames (US, UK, and the most frequent elsewhere), for "Priya Raman"-style pairs whose given name
# is not in the table above.
_EN_SURNAMES = frozenset(
    """Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez
    Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez
    Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker
    Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins
    Reyes Stewart Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly
    Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood Bennett Gray Mendoza Ruiz Hughes Price
    Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez Powell Jenkins Perry Russell Sullivan Bell
    Coleman Butler Henderson Barnes Fisher Vasquez Simmons Graham Murray Ford Hamilton Wallace Gibson
    Fischer Schmidt Schneider Weber Meyer Wagner Becker Schulz Hoffmann Muller Rossi Russo Ferrari Bianchi
    Romano Colombo Dubois Durand Lefebvre Moreau Laurent Bernard Petit Kowalski Nowak Wisniewski Ivanov
    Petrov Smirnov Tanaka Suzuki Takahashi Watanabe Yamamoto Nakamura Sato Ito Park Choi Jung Kang Cho
    Singh Kumar Sharma Gupta Raman Reddy Iyer Nair Khan Ahmed Hussain Haddad Okafor Okonkwo Mensah Adeyemi
    Lindqvist Johansson Andersson Nilsson Larsen Hansen Jensen O'Connor O'Brien O'Neill Murphy Kelly Byrne
    Ryan Walsh""".split()
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
    North South East West Central Airways Pay Wallet Platinum Gold Silver Prime Agent Officer Nurse Doctor
    Captain Teacher Professor Judge Director Chief Senior Junior Ticket Invoice Reference Per""".split()
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
    return (first in _EN_GIVEN or (first in _PINYIN_SURNAMES and _pinyin_given(last)) or last in _PINYIN_SURNAME_LAST
            or last in _EN_SURNAMES)


def _weak_cue_before(text: str, start: int) -> bool:
    """True if the one or two words before `start` are a weak cue such as "Hi", "thanks", "I'm", "cc:"."""
    m = _EN_PREV_WORDS_RE.search(text, max(0, start - 20), start)
    if not m:
        return False
    last = (m.group(2) or m.group(1)).lower()
    pair = f"{m.group(1)} {m.group(2)}".lower() if m.group(2) else ""
    return last in _EN_WEAK_CUES or pair in _EN_WEAK_CUES
