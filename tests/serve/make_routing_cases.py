"""Build tests/serve/routing_cases.json: prompts of four domains (bank, shop, clinic, law), zh and en, with
the training prompts and the held-out prompts worded by different templates, so a router is measured on
how it generalises to new wording, not on memorised phrases. Deterministic: run this file to rebuild."""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).with_name("routing_cases.json")
RNG = random.Random(5)

DOMAINS = {
    "bank": {
        "slots": {"x": ["debit card", "credit card", "savings account", "mortgage", "wire transfer", "overdraft"],
                  "zx": ["借记卡", "信用卡", "储蓄账户", "房贷", "跨行转账", "透支额度"]},
        "train": ["How do I close my {x}?", "What fees apply to my {x}?", "Can I raise the limit on my {x}?",
                  "我的{zx}怎么注销？", "{zx}收费标准是什么？"],
        "test": ["Is there any charge for a {x} this month?", "Please help me cancel the {x} I opened last year",
                 "请问{zx}可以提高额度吗？", "我想了解一下{zx}的年费"],
    },
    "shop": {
        "slots": {"x": ["running shoes", "ceramic mug", "wool scarf", "phone case", "desk lamp", "backpack"],
                  "zx": ["跑鞋", "陶瓷杯", "羊毛围巾", "手机壳", "台灯", "双肩包"]},
        "train": ["Write a product description for a {x}.", "My {x} arrived broken, can I return it?",
                  "Does the {x} come in other colours?", "帮我写一段{zx}的商品描述", "{zx}收到是坏的，可以退货吗？"],
        "test": ["Where is the parcel with my {x}? It has not shipped", "Give me catchy marketing copy for this {x}",
                 "{zx}还有别的颜色吗？", "我买的{zx}想换一个尺寸"],
    },
    "clinic": {
        "slots": {"x": ["a headache", "a fever", "back pain", "a cough", "a rash", "dizziness"],
                  "zx": ["头痛", "发烧", "腰疼", "咳嗽", "皮疹", "头晕"]},
        "train": ["I have had {x} for three days, what should I do?", "Which department treats {x}?",
                  "Is {x} a reason to see a doctor today?", "{zx}三天了怎么办？", "{zx}应该挂哪个科？"],
        "test": ["My child woke up with {x}, should we go to the hospital?", "What medicine helps with {x}?",
                 "老人{zx}需要马上就医吗？", "{zx}吃什么药比较好"],
    },
    "law": {
        "slots": {"x": ["a rental contract", "an employment contract", "a will", "a loan agreement", "a divorce",
                        "a trademark"],
                  "zx": ["租房合同", "劳动合同", "遗嘱", "借款协议", "离婚协议", "商标"]},
        "train": ["Is {x} valid without a signature?", "How do I challenge {x} in court?",
                  "What should {x} contain?", "{zx}没有签字有效吗？", "怎么起诉对方违反{zx}？"],
        "test": ["My landlord broke {x}, can I sue?", "Who pays the lawyer when {x} is disputed?",
                 "{zx}需要公证吗？", "对方不履行{zx}，我该怎么维权"],
    },
}


def fill(templates: list[str], slots: dict[str, list[str]]) -> list[str]:
    out = []
    for template in templates:
        for x, zx in zip(slots["x"], slots["zx"], strict=True):
            out.append(template.format(x=x, zx=zx))
    return out


def main() -> None:
    cases = {name: {"train": fill(d["train"], d["slots"]), "test": fill(d["test"], d["slots"])}
             for name, d in DOMAINS.items()}
    OUT.write_text(json.dumps(cases, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"wrote {OUT}: " + ", ".join(f"{k} {len(v['train'])}/{len(v['test'])}" for k, v in cases.items()))


if __name__ == "__main__":
    main()
