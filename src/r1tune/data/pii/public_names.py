"""Names of well-known public and fictional people, kept unmasked under `pii.person_scope: private`.

Masking 孔子 or Sherlock Holmes protects nobody and damages text about history, literature or the news;
masking a customer's name is the point. The default scope (`all`) masks every name, because a list can
never be complete and a private person can share a famous name; `private` is the choice for corpora where
public figures matter (news, education, literature) and is applied after detection, by exact name.
"""

from __future__ import annotations

PUBLIC_NAMES = frozenset(
    "孔子 孟子 老子 庄子 孙子 荀子 韩非子 墨子 李白 杜甫 白居易 苏轼 王安石 欧阳修 李清照 辛弃疾 陆游 司马迁 "
    "诸葛亮 曹操 刘备 孙权 关羽 张飞 赵云 秦始皇 汉武帝 唐太宗 武则天 成吉思汗 康熙 乾隆 郑和 林则徐 孙中山 "
    "鲁迅 老舍 巴金 冰心 钱钟书 莫言 金庸 屈原 岳飞 文天祥 花木兰 孙悟空 猪八戒 唐僧 沙僧 林黛玉 贾宝玉 薛宝钗 "
    "王熙凤 武松 宋江 李逵 林冲 鲁智深 诸葛孔明 屠呦呦 袁隆平 钱学森 邓稼先 杨振宁 李政道 姚明 刘翔 李娜 郎平 "
    "冯小刚 张艺谋 成龙 李小龙 周杰伦 王菲 邓丽君 马云 马化腾 雷军 任正非".split()
) | frozenset((
    "Albert Einstein", "Isaac Newton", "Charles Darwin", "William Shakespeare", "Abraham Lincoln",
    "George Washington", "Martin Luther King", "Marie Curie", "Leonardo da Vinci", "Napoleon Bonaparte",
    "Winston Churchill", "Nelson Mandela", "Mahatma Gandhi", "Sherlock Holmes", "Harry Potter",
    "Hermione Granger", "Mickey Mouse", "Elon Musk", "Bill Gates", "Steve Jobs", "Taylor Swift",
))


def is_public_name(name: str) -> bool:
    return name.strip() in PUBLIC_NAMES
