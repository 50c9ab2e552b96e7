"""Build tests/data/quality_cases.jsonl: customer-service records labelled good or bad for the learned
quality filter, 80 of each, in English and Chinese.

Good: an answer that addresses the question with the bank's specifics. Bad: what real support exports are
full of and the rule-based filters let through (they are long enough, not repetitive, not garbage):
auto-replies, non-answers, answers to another question, agent notes, signatures and chit-chat.
`meta.quality` holds the label; `meta.split` says which records a user would mark (`marked`, 20 + 20)
and which the filter must judge (`judge`). Deterministic: `python tests/data/make_quality_cases.py`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).with_name("quality_cases.jsonl")
RNG = random.Random(11)

TOPICS = [
    ("How do I freeze my debit card?", "Open the app, go to Cards > Freeze and confirm with your PIN; the card "
     "is blocked at once and you can unfreeze it the same way."),
    ("What is the daily transfer limit?", "The app allows 50,000 yuan a day; raise it under Settings > Limits "
     "with your U-key, or at a branch with your ID card."),
    ("How long does a refund take?", "Refunds reach your card in 5 to 7 business days after the merchant "
     "confirms them; you will get an SMS when it arrives."),
    ("Where can I download my statement?", "Statements are under Accounts > Statements as PDF for the last "
     "24 months; paper copies cost 5 yuan each."),
    ("Why was I charged an annual fee?", "The 200-yuan annual fee is waived when you spend 6 times in a card "
     "year; otherwise it is charged on the card's anniversary."),
    ("How do I reset my login password?", "Tap Me > Security > Reset password, enter the code sent to your "
     "registered phone and choose a new password of 8 to 16 characters."),
    ("Can I raise my credit limit?", "After 6 months of on-time payments you can apply under Cards > Credit "
     "limit; the decision takes up to 3 business days."),
    ("What is the exchange rate fee abroad?", "Card payments in foreign currency carry a 1.5% conversion fee; "
     "withdrawals abroad cost 12 yuan plus 1% each."),
    ("如何冻结借记卡？", "打开手机银行，进入 卡片 > 冻结，输入密码确认即可，卡片立即停用，随时可以解冻。"),
    ("每日转账限额是多少？", "手机银行每日转账限额为5万元，可在 设置 > 限额 中用U盾提高，或携带身份证到网点办理。"),
    ("退款多久到账？", "商户确认退款后，款项会在5到7个工作日内退回原卡，到账时会有短信提醒。"),
    ("信用卡年费怎么收？", "年费200元，一个卡片年度内刷卡满6次即可免收，否则在开卡周年日扣收。"),
]
BAD = [
    "Thank you for your message. Our team will get back to you as soon as possible.",
    "Auto-reply: I am out of the office until Monday and will answer your email when I return.",
    "Please see the attachment.", "Sent from my iPhone", "I'm not sure about that, maybe ask someone else?",
    "Customer called again, transferred to second line, ticket still open.",
    "Best regards, Customer Service Team, Head Office, Building 3",
    "Haha thanks, have a nice weekend too!", "Let me check with my supervisor and call you back later.",
    "This chat has been closed due to inactivity. Please start a new chat if you need more help.",
    "感谢您的来信，我们会尽快回复您。", "本邮件为系统自动回复，请勿直接回复。", "好的，收到。", "我也不太清楚，您问问别人吧。",
    "客户再次来电，已转二线处理，工单未关闭。", "祝您周末愉快！", "稍后给您回电。", "会话因长时间无操作已自动关闭。",
]


def main() -> None:
    rows = []
    for i in range(80):
        question, answer = TOPICS[i % len(TOPICS)]
        rows.append(_row(f"{question} (case {i})", answer, "good"))
        wrong = TOPICS[(i + 3) % len(TOPICS)][1] if i % 4 == 0 else BAD[i % len(BAD)]  # some answer another question
        rows.append(_row(f"{TOPICS[(i + 1) % len(TOPICS)][0]} (case {i})", wrong, "bad"))
    RNG.shuffle(rows)
    marked = {"good": 0, "bad": 0}
    for row in rows:
        label = row["meta"]["quality"]
        row["meta"]["split"] = "marked" if marked[label] < 20 else "judge"
        marked[label] += 1
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} records to {OUT}")


def _row(question: str, answer: str, label: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
            "meta": {"quality": label}}


if __name__ == "__main__":
    main()
