"""Build tests/data/pii_hard_cases.jsonl: a harder labelled PII set, about half negatives.

What makes it harder than pii_cases.jsonl: person names inside ordinary sentences with no cue word
("本次由闫超负责跟进", "Spoke with Priya Raman about the refund"), bank cards in every grouping (6+13, 6+10,
4-4-4-4-3, 4-6-6, ...), records mixing a name, a phone and an address, and business look-alikes that must
survive: hotlines, order/tracking/invoice numbers, SKUs, amounts, dates, versions, Luhn-invalid card-shaped
numbers, brand and place names that start with a surname character.

Written independently of r1tune.data.pii: names come from this file's own surname and given-name tables,
checksums from this file's own Luhn, sentences from hand-written templates. Deterministic (fixed seed), so
`python tests/data/make_pii_hard_cases.py` reproduces the file. Span conventions are those of
make_pii_cases.py (PERSON without titles, PHONE and BANK_CARD with their separators).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).with_name("pii_hard_cases.jsonl")
RNG = random.Random(20261201)

ZH_SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁"
                   "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严") + [
    "欧阳", "司马", "上官", "诸葛"]
ZH_GIVEN_1 = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红娥玲芬燕彬鹏辉宇浩然晨阳婷雪琳倩"
                  "颖欣怡博文斌龙俊凯晓丹飞鑫健波宁瑶璐菲蕾薇翔昊睿轩")
ZH_TEMPLATES_NO_CUE = [
    "{n}说快递一直没有送到。", "本次由{n}负责跟进。", "{n}于上周投诉了扣款问题。", "昨天{n}来电询问退款进度。",
    "这笔贷款是{n}在柜台办理的。", "{n}对处理结果表示满意。", "已与{n}确认，周三上门安装。", "{n}的订单已经退款完成。",
    "会上{n}提出要调整额度。", "今天上午{n}到网点补办了银行卡。", "据{n}反映，APP登录一直失败。", "{n}希望尽快处理。",
    "麻烦把合同发给{n}审核一下。", "本单交由{n}处理，{m}协助。", "{n}和{m}都参加了培训。", "{n}昨天已经签收包裹。",
    "{n}在评价里写了差评。", "经{n}同意，订单改为到付。", "{n}上个月刚开通了手机银行。", "值班经理{n}已经批准。",
    "{n}反馈说账单金额不对。", "我们已经给{n}回电。", "{n}要求开具增值税发票。", "这位客户{n}情绪比较激动。",
]
ZH_TEMPLATES_CUE = [
    "联系人：{n}", "客户姓名{n}，已核实。", "收件人{n}，请放快递柜。", "患者{n}，男，45岁。", "{n}先生您好，您的申请已受理。",
    "请转告{n}女士明天来取件。", "持卡人：{n}", "经办人{n}签字确认。",
]
EN_GIVEN = ["James", "Sarah", "Michael", "Emily", "David", "Jessica", "Priya", "Mohammed", "Aisha", "Mateo",
            "Olga", "Hiroshi", "Fatima", "Liam", "Grace", "Carlos", "Ingrid", "Tomasz", "Chloe", "Ravi"]
EN_SURNAMES = ["Miller", "Garcia", "Patel", "Nguyen", "Kowalski", "Okafor", "Johnson", "Brown", "Raman", "Rossi",
               "Schmidt", "Tanaka", "Haddad", "O'Connor", "Fischer", "Lindqvist", "Walker", "Dubois"]
EN_TEMPLATES = [
    "{n} called about the refund twice this week.", "Spoke with {n} about the late fee.",
    "The complaint from {n} was escalated to tier 2.", "{n} asked us to close the account.",
    "Please send the contract to {n} for review.", "Yesterday {n} confirmed the delivery address.",
    "Ticket reassigned to {n} after the outage.", "{n} says the card was charged twice.",
    "Per {n}, the branch opens at 9.", "Customer {n} requested a paper statement.",
]

ZH_PHONES = ["13812345678", "139-2468-1357", "186 0000 1234", "+86 150 1234 5678", "(010) 6552 9988", "021-64378888"]
EN_PHONES = ["(415) 555-0132", "+1 212 555 0198", "+44 20 7946 0958"]
ZH_ADDRESSES = ["上海市浦东新区张杨路500号", "北京市朝阳区建国路88号2号楼1503室", "广州市天河区体育西路191号",
                "杭州市西湖区文三路90号", "成都市武侯区人民南路四段12号"]
EN_ADDRESSES = ["742 Evergreen Terrace", "1600 Pennsylvania Avenue", "221B Baker Street"]


def luhn_digit(body: str) -> str:
    total = 0
    for i, c in enumerate(reversed(body)):
        d = int(c)
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return str((10 - total % 10) % 10)


def card(prefix: str, length: int, valid: bool = True) -> str:
    body = prefix + "".join(RNG.choice("0123456789") for _ in range(length - len(prefix) - 1))
    check = luhn_digit(body)
    return body + (check if valid else str((int(check) + 1 + RNG.randrange(8)) % 10))


def grouped(digits: str, groups: list[int], sep: str) -> str:
    parts, i = [], 0
    for g in groups:
        parts.append(digits[i:i + g])
        i += g
    if i < len(digits):
        parts.append(digits[i:])
    return sep.join(parts)


CARD_SHAPES = [  # (BIN prefix, length, grouping)
    ("622202", 19, [6, 13]), ("622848", 16, [6, 10]), ("518750", 16, [6, 10]), ("621700", 19, [4, 4, 4, 4, 3]),
    ("411111", 16, [4, 4, 4, 4]), ("552266", 16, [4, 4, 8]), ("625807", 19, [6, 6, 7]), ("437725", 16, [4, 6, 6]),
    ("601382", 19, [3, 4, 4, 4, 4]), ("628888", 18, [6, 12]), ("455612", 16, [8, 8]), ("622588", 16, [6, 4, 6]),
]
ZH_CARD_TEMPLATES = ["卡号{c}已挂失。", "请向{c}转账。", "尾号不对，完整卡号是{c}", "客户的借记卡 {c} 被冻结了",
                     "用卡{c}支付失败"]
EN_CARD_TEMPLATES = ["Card {c} was declined.", "Refund to card number {c}, please.", "The card on file is {c}."]

NEG_ZH = [
    "请拨打客服热线95588咨询。", "全国统一服务电话400-820-8888，工作日9点到18点。", "订单号 202311 2212345678 已发货。",
    "运单号SF1234567890123，请注意查收。", "发票号码 0441 1900 2145 6789 已开具。", "商品编码SKU-88421-BLK库存不足。",
    "本次消费金额¥12,345.67，已入账。", "活动时间2026-11-11至2026-11-13。", "APP已升级到版本8.2.10。",
    "王者荣耀的充值订单已退款。", "高新区的网点本周末正常营业。", "张家界旅游套餐立减200元。", "林业局的公函已经签收。",
    "周末两天客服照常在线。", "黄金积存金价格今日上涨1.2%。", "马上就到还款日了，请及时还款。", "方便的话请在APP内操作。",
    "白金卡年费为1000元。", "江苏分行发布了新的理财产品。", "金额超过5万元需要柜台办理。", "石油化工板块今日下跌。",
    "常规体检项目包括血常规。", "安装师傅会提前一天电话预约。", "明细已发送到您的邮箱。", "文件请在三个工作日内提交。",
    "严重逾期会影响征信记录。", "武汉仓库发货时效为48小时。", "龙头股今日涨停。", "陈列商品不参与折扣。",
    "周大福门店可以以旧换新。", "王老吉每箱24罐，促销价68元。", "华为手机支持NFC支付。", "苏宁易购的订单请联系商家。",
    "杨浦区的自提点已关闭。", "宋体和黑体都可以用于合同正文。", "黄山风景区门票可以在线预订。", "万达广场店今日闭店盘点。",
    "高速公路通行费可以用ETC支付。", "程序更新后请重新登录。", "任何人不得索要您的验证码。", "谢谢您的耐心等待。",
    "曾经办理过的业务可以在记录里查询。", "于是我们为您升级了服务。", "许多客户反映到账慢。", "何时到账取决于对方银行。",
    "余额不足时自动扣款会失败。", "叶子形状的图标是理财入口。", "邓白氏编码用于企业认证。", "孙子兵法是经典读物。",
    "韩国进口商品需要报关。", "冯记面馆的团购券已过期。", "常见问题请查看帮助中心。", "江南造船厂位于上海。",
    "东方明珠门票支持退改。", "白天和夜间的客服电话不同。", "金卡用户可享受机场贵宾厅。", "何况还有手续费优惠。",
    "高兴地通知您，额度已提升。", "田园风格的套餐很受欢迎。", "董事会决议已经公告。", "黎明时分系统自动对账。",
    "毛利率同比提升了3个百分点。", "钱包余额可以提现到银行卡。", "石家庄分行的地址已更新。", "宁波港的集装箱到港延误。",
]
NEG_EN = [
    "Call our hotline 1-800-555-0100 for help.", "Order #A1234567 shipped on 2026-11-22.",
    "Tracking number 1Z999AA10123456784 is in transit.", "Invoice INV-2026-004512 is due in 30 days.",
    "The total was $1,234,567.89 including tax.", "Version 10.2.0.1 fixes the login bug.",
    "Visa Platinum cardholders get 2% cashback.", "Apple Pay and Google Pay are both supported.",
    "Customer Service is open Monday to Friday.", "The Grand Canyon tour is sold out.",
    "Our New York branch moves on December 1.", "Use promo code WINTER25 at checkout.",
    "SKU 88421-BLK-XL is back in stock.", "Reference 4521 8890 1234 5678 is not a card number.",
    "The meeting is on Tuesday at 3 pm.", "Mastercard Gold has no annual fee.",
    "Rate: 3.85% APR for 12 months.", "Batch 2026-11-30-0042 was processed overnight.",
    "Amazon Prime members get free shipping.", "Please update the Android app to 8.2.10.",
]


def positive_cases() -> list[dict]:
    cases = []
    for i, template in enumerate(ZH_TEMPLATES_NO_CUE * 3):
        names = [zh_name() for _ in range(2)]
        text = template.format(n=names[0], m=names[1])
        spans = [{"type": "PERSON", "text": n} for n in names[: 1 + ("{m}" in template)]]
        cases.append({"text": text, "spans": spans, "note": f"zh name without cue #{i % len(ZH_TEMPLATES_NO_CUE)}"})
    for template in ZH_TEMPLATES_CUE * 2:
        name = zh_name()
        cases.append({"text": template.format(n=name), "spans": [{"type": "PERSON", "text": name}],
                      "note": "zh name with cue"})
    for template in EN_TEMPLATES * 2:
        name = f"{RNG.choice(EN_GIVEN)} {RNG.choice(EN_SURNAMES)}"
        cases.append({"text": template.format(n=name), "spans": [{"type": "PERSON", "text": name}],
                      "note": "en name without cue"})
    for prefix, length, groups in CARD_SHAPES * 3:
        number = grouped(card(prefix, length), groups, RNG.choice([" ", " ", "-"]))
        template = RNG.choice(ZH_CARD_TEMPLATES + EN_CARD_TEMPLATES)
        cases.append({"text": template.format(c=number), "spans": [{"type": "BANK_CARD", "text": number}],
                      "note": f"card {length} digits grouped {groups}"})
    return cases + mixed_cases()


def mixed_cases() -> list[dict]:
    cases = []
    for _ in range(16):
        name, phone, address = zh_name(), RNG.choice(ZH_PHONES), RNG.choice(ZH_ADDRESSES)
        text = RNG.choice(["{n}的电话是{p}，住在{a}。", "请{n}把发票寄到{a}，有问题打{p}。", "{n}（{p}）要求改送{a}。"])
        cases.append({"text": text.format(n=name, p=phone, a=address), "note": "mixed zh: name + phone + address",
                      "spans": [{"type": "PERSON", "text": name}, {"type": "PHONE", "text": phone},
                                {"type": "ADDRESS", "text": address}]})
    for _ in range(8):
        name = f"{RNG.choice(EN_GIVEN)} {RNG.choice(EN_SURNAMES)}"
        phone, address = RNG.choice(EN_PHONES), RNG.choice(EN_ADDRESSES)
        text = RNG.choice(["{n} lives at {a} and can be reached on {p}.", "Ship to {n}, {a}. Phone {p}."])
        cases.append({"text": text.format(n=name, p=phone, a=address), "note": "mixed en: name + phone + address",
                      "spans": [{"type": "PERSON", "text": name}, {"type": "PHONE", "text": phone},
                                {"type": "ADDRESS", "text": address}]})
    return cases


def zh_name() -> str:
    return RNG.choice(ZH_SURNAMES) + "".join(RNG.choice(ZH_GIVEN_1) for _ in range(RNG.choice([1, 2, 2])))


def negative_cases() -> list[dict]:
    cases = [{"text": t, "spans": [], "note": "zh look-alike"} for t in NEG_ZH]
    cases += [{"text": t, "spans": [], "note": "en look-alike"} for t in NEG_EN]
    for i in range(50):  # numbers of the business: order ids, amounts, dates, times, versions
        order = "2026" + "".join(RNG.choice("0123456789") for _ in range(14))
        amount = f"{RNG.randrange(1, 999)},{RNG.randrange(1000):03d}.{RNG.randrange(100):02d}"
        date = f"2026-{RNG.randrange(1, 13):02d}-{RNG.randrange(1, 29):02d}"
        text = [f"订单{order}已于{date}发货。", f"本月账单金额{amount}元，最低还款额{RNG.randrange(100, 999)}元。",
                f"Order {order} was paid on {date}.", f"版本{RNG.randrange(1, 20)}.{RNG.randrange(10)}.{RNG.randrange(100)}"
                f"于{date} 10:{RNG.randrange(60):02d}发布。", f"Invoice total {amount} USD, due {date}."][i % 5]
        cases.append({"text": text, "spans": [], "note": "business number"})
    for prefix, length, groups in CARD_SHAPES * 3:  # card-shaped numbers that fail Luhn: order/reference numbers
        number = grouped(card(prefix, length, valid=False), groups, " ")
        text = RNG.choice(["订单号{c}请核对。", "流水号 {c}", "Reference {c} was archived.", "合同编号{c}"])
        cases.append({"text": text.format(c=number), "spans": [], "note": "Luhn-invalid card-shaped number"})
    return cases


def main() -> None:
    cases = positive_cases() + negative_cases()
    OUT.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases), encoding="utf-8")
    negatives = sum(not c["spans"] for c in cases)
    print(f"wrote {len(cases)} cases ({negatives} negatives) to {OUT}")


if __name__ == "__main__":
    main()
