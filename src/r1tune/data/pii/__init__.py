"""Find and mask personal data (PII) in Chinese and English training text before it reaches a model.

Why this package exists: fine-tuning data from banks, hospitals and shops is full of ID numbers, phones, card
numbers, names and addresses, and a model that memorises them can leak them. Generic tools miss Chinese
formats (no resident-ID or USCC recognisers, `\b` never fires between a CJK character and a digit, 19-digit
UnionPay cards are not covered), so everything here is hand-written regex plus checksum validation:

* Numbers are only PII when their checksum/structure says so (GB 11643 ID check char + real birth date,
  Luhn + card-network prefix, GB 32100 USCC check char). Order numbers, timestamps, prices and invalid
  look-alikes therefore survive; a "last cue wins" look-back (订单号/Order #/tracking ... vs 电话/卡号/ID)
  keeps numbers labelled as order/tracking/serial numbers unmasked.
* Boundaries are `(?<![0-9A-Za-z])...(?![0-9A-Za-z])`, never `\b`, so `电话13812345678` is found.
* Full-width ASCII (`１３８…`, `＠`) is folded to half-width before matching; offsets map 1:1.
* Names use cues (姓名/联系人/先生/女士/经理, Mr./Dear/"my name is"/signatures, jieba on a small window
  around a cue) and, without a cue, a surname + given-name scan checked against jieba's dictionary
  (`free_names`, the default) or THULAC's learned tagger (`learned_names`, `names="thulac"`); English
  names also pair a given name or a common surname with a capitalised neighbour. `person_scope="private"`
  keeps well-known public and fictional names (`public_names`).

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

One module per job: `checksums`, `text` (shared regex pieces), `numbers`, `names`, `free_names`,
`learned_names` and `addresses` (the detectors), `public_names`, `detector` (the driver), `pseudonyms`, `masker`, `files` and `evaluation`.
"""

from __future__ import annotations

from r1tune.data.pii.checksums import (
    cn_id_check_char,
    is_valid_cn_id,
    is_valid_uscc,
    luhn_check_digit,
    luhn_valid,
    uscc_check_char,
)
from r1tune.data.pii.detector import PiiDetector, detect_pii
from r1tune.data.pii.evaluation import evaluate_pii
from r1tune.data.pii.files import mask_file, mask_record
from r1tune.data.pii.masker import PiiMasker
from r1tune.data.pii.pseudonyms import normalize_value
from r1tune.data.pii.spans import PII_TYPES, PiiSpan, Strategy

__all__ = ["PII_TYPES", "PiiDetector", "PiiMasker", "PiiSpan", "Strategy", "cn_id_check_char", "detect_pii", "evaluate_pii", "is_valid_cn_id", "is_valid_uscc", "luhn_check_digit", "luhn_valid", "mask_file", "mask_record", "normalize_value", "uscc_check_char"]
