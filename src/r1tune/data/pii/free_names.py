"""Chinese person names in running text, without a cue word ("本次由闫超负责跟进", "王丽于上周投诉").

Why not segment every sentence with jieba: a full jieba pass runs at about 2,300 records/s here, under
the 5,000 the data pipeline needs, and jieba tags many ordinary words as names (谢谢, 叶子). Instead:

1. one regex finds every place where a common surname is followed by 1-2 characters that are common in
   given names (overlapping starts, so "由金彬鑫" is tried at 由 and at 金);
2. each candidate is scored with dictionary look-ups only (jieba's word table, no segmentation): it is
   rejected when it starts an ordinary word (白金, 许多, 周末), when its surname ends the word before it
   (提高明年), or when it is a known brand or place;
3. a two-character given name is shortened to one when its second character starts a common word with
   what follows ("李明天来" is not 李明天).

Surnames are the ~130 most common ones (about 90% of people); surnames that are also everyday words
(于 "at", 和, 由, 时, 成, 来) need a cue and are handled by `names._find_zh_person`.

Measured beyond the labelled sets, on text without private names: no false name in the 620 product rows of
the bundled example, and on LLaMA-Factory's alpaca_zh_demo (1,000 records, 219k characters) the scan
added 9 names to the cue-based ones, 7 of them people (李娜, 李华, 梅西, 孟菲) and 2 not (裴达 for
Descartes, 卢旺达). A first version without the context rule below added 52, 38 of them words (温泉, 史诗,
祝福: jieba's table lists many everyday words as names too).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

from r1tune.data.pii.names import _jieba
from r1tune.data.pii.text import Cand

SURNAMES_1 = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢"
    "姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温"
    "康施牛樊葛邢齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿焦俞左柳甘祝包舒阮柯纪梅童凌毕裴霍涂苗谷盛曲翁冉骆蓝"
)
SURNAMES_2 = ("欧阳", "司马", "上官", "诸葛", "皇甫", "慕容", "令狐", "公孙", "司徒", "夏侯", "端木", "尉迟", "长孙")
# Characters common in given names; everyday function characters (的, 了, 在, 于, 上, 说...) are left out
# so that "任秀于上周" ends the name at 秀.
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红娥玲芬燕彬鹏辉宇浩然晨阳婷雪琳倩颖欣怡博文斌龙俊"
    "凯晓丹飞鑫健波宁瑶璐菲蕾薇翔昊睿轩峰磊鸣志刚兵斌亮林建国庆春秋梅兰竹菊凤琴瑜嘉佳慧慧惠娇媛婉蓉莉莎"
    "晶晴岚琪琦瑞祥福禄寿康安泰荣昌盛隆兴旺德仁义礼智信忠孝诚毅勇刚坚强飞腾跃鹤鹰鸿雁翠珍珠宝贵富海江河"
    "湖波涛洪泉溪清澄源洁淑贤良善美丽秀婧妍娴雯霏露霜冰洁璇琳琼瑾璐珊玮琛璋铭锋锐钢钧鑫铮阳晖曦旭昕昊晟"
    "昭晨晓星辰月朗皓煜炜烨熠灿焱坤培垚均城墨轩宇宏宸安宁宗宪彤彦影彬杉松柏桐楠林森栋梁楷榕樱桦枫"
    "帆航远达迪逸遥通进锦绣纯维绮缘红绍继振扬抒拓捷敏敬斐昶晋晏景智曜朝朔杰桀然照熙爽牧猛玺琨瑶甜"
    "生田甫男畅益盈真睿石磊祯祺祎禹秀程稳立竣笑筠策箐米粲紫繁罗羽翊翔翰耀聪胜舒航良艺芝芬苇苑若"
    "英茂茵荣莉菲萌萍蓓蔚蕊蕾薇虹蝶行衡西言誉许诗谦豪贝贞贤赫超越跃军轶辉迎运远逸道钊铭锦长阔雄"
    "雅雨雪雯霖霞青靖静韬韵颖飒香馨驰骁骏高魁鸣鹏麟黎"
)
_NOT_FIRST_GIVEN = frozenset("的了在是不有这个们上下来去说要会对都也就还把被让给和与及或等从到向已于之而以其所为可能")
_GIVEN_CLASS = "".join(sorted(set(GIVEN) - _NOT_FIRST_GIVEN))
_CANDIDATE = re.compile(
    "(?=(" + "|".join(SURNAMES_2) + "|[" + "".join(sorted(SURNAMES_1)) + "])([" + _GIVEN_CLASS + "]{1,2}))"
)
# What stands right before and after a person in running text: punctuation, function words, the ends of
# time words and role nouns (昨天王丽, 客户王丽, 邻居李娜), and the verbs people do things with.
_BOUNDARY = set("，。！？、：；（）()“”\"' \n\t,.!?:;")
_BEFORE_NAME = _BOUNDARY | set("和与及跟同是由经据给向对让请被把叫找帮替为从问天晚早午户员长理师人居友事生位")
_AFTER_NAME = _BOUNDARY | set("说讲问答称表提要想希望认觉告打发收签拿接拉写看买卖用来去到回确同负处协参补开投反评"
                                  "上刚曾已也都还又就对向把被给让在是的和与及于等先后今昨")
# Words a surname often ends without being one ("和田菲": 和 is a function word, so 和田 does not count).
_FUNCTION_BEFORE = frozenset("和与及跟同是由经据给向对让请被把叫找帮替为从位并或及")
# Brands and places that read like names; jieba lists several of them as person names.
KNOWN_NOT_PERSONS = frozenset(
    "周大福 周生生 周黑鸭 王老吉 张小泉 东方明珠 金龙鱼 李锦记 马应龙 杜蕾斯 邓白氏 宋城 黄鹤楼 白云山 高德 "
    "苏宁 万达 万科 华润 江南 金华 黎明 文明 高明区 张江 叶子 钱江 马自达".split()
)
_WORD_FREQ_MIN = 3  # dictionary words rarer than this are mostly names and noise in jieba's table


@lru_cache(maxsize=1)
def _tables() -> tuple[dict[str, int], dict[str, str]]:
    tok, tags = _jieba()
    return tok.FREQ, tags


_WORD_TAGS_IN_NAMES = ("ns", "nz", "nr", "t")  # 建国, 海洋, 文华: words that are also common given names


def _is_word(text: str, freq: dict[str, int], tags: dict[str, str], min_freq: int = _WORD_FREQ_MIN) -> bool:
    """An ordinary dictionary word (not tagged as a name)."""
    tag = tags.get(text)
    return freq.get(text, 0) >= min_freq and tag is not None and not tag.startswith("nr")


def _given_is_a_word(given: str, freq: dict, tags: dict) -> bool:
    """易清洁 (easy to clean), 白运动: the "given name" is an everyday word (清洁) or its first character
    starts one with what follows (运动). Words that are also common given names (建国, 海洋) do not count."""
    tag = tags.get(given) or ""
    return len(given) == 2 and freq.get(given, 0) >= 500 and not tag.startswith(_WORD_TAGS_IN_NAMES)


def _starts_word(text: str, start: int, surname: str, freq: dict, tags: dict) -> bool:
    """The candidate's first characters past the surname form an ordinary word (白金, 许多) or a known
    brand/place; a two-character surname is itself often a word (欧阳 is also a place) and is not judged."""
    first_stop = start + max(2, len(surname) + 1)
    for stop in range(first_stop, min(len(text), first_stop + 2) + 1):
        piece = text[start:stop]
        if piece in KNOWN_NOT_PERSONS or _is_word(piece, freq, tags):
            return True
    return False


def _surname_ends_word(text: str, start: int, freq: dict, tags: dict) -> bool:
    """提高明年: the surname character closes the word before it."""
    if start == 0 or text[start - 1] in _FUNCTION_BEFORE:
        return False
    return any(_is_word(text[i:start + 1], freq, tags, 50) for i in range(max(0, start - 2), start))


def _after_degree_word(text: str, start: int) -> bool:
    """很高明, 非常周到: after a degree adverb the characters are an adjective, not a name."""
    return text[max(0, start - 2):start].endswith(("很", "太", "最", "更", "非常", "十分", "特别", "比较"))


def _given_length(text: str, given_start: int, given: str, freq: dict, tags: dict) -> int:
    """2, unless the second given character begins a common word with what follows (李明天来 → 李明)."""
    if len(given) == 2:
        after = text[given_start + 1:given_start + 3]
        if len(after) == 2 and _is_word(after, freq, tags, 500):
            return 1
    return len(given)


def _in_person_context(text: str, start: int, end: int, freq: dict) -> bool:
    """Person-like surroundings, and the character before does not make the candidate part of a word
    (天王星 is a planet, not 王星 after 天)."""
    before = text[start - 1] if start else "\n"
    after = text[end] if end < len(text) else "\n"
    return before in _BEFORE_NAME and after in _AFTER_NAME and not freq.get(text[start - 1:end], 0) if start \
        else after in _AFTER_NAME


def _looks_like_a_word(surname: str, given: str, freq: dict) -> bool:
    """温泉, 史诗, 余晖: surname + first given character is a dictionary entry (jieba tags many everyday
    words as names too, so the tag cannot tell), or the given part is."""
    return freq.get(surname + given[0], 0) >= 5 or freq.get(given, 0) >= 100


def find_zh_person_free(text: str) -> Iterator[Cand]:
    """Chinese names without a cue word (see the module docstring); score 0.6, below cue-based finds."""
    freq, tags = _tables()
    for m in _CANDIDATE.finditer(text):
        start, surname, given = m.start(), m.group(1), m.group(2)
        given_start = start + len(surname)
        given = given[: _given_length(text, given_start, given, freq, tags)]
        end = given_start + len(given)
        if _given_is_a_word(given, freq, tags) or _given_is_a_word(text[given_start:given_start + 2], freq, tags):
            continue
        if not _in_person_context(text, start, end, freq) and (len(given) == 1 or _looks_like_a_word(surname, given, freq)):
            continue  # outside a person's usual surroundings only an unmistakable full name counts
        if _starts_word(text, start, surname, freq, tags) or _after_degree_word(text, start) or _surname_ends_word(text, start, freq, tags):
            continue
        yield start, end, "PERSON", 0.6
