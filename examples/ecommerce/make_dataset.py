"""Generate the bundled e-commerce example: product attributes -> house-style product descriptions.

Deterministic (fixed seed), standard library only, no network. Every phrase below was written for this
project; all product names and brands are invented.

House style (what a tuned model should pick up):

* English, by length
    - short  (25-40 words):  hook . material+colour+feature-list sentence . call to action (no price)
    - medium (45-70 words):  hook . material+colour . one sentence per feature . price . call to action
    - long   (75-100 words): hook . usage scene . material+colour . one sentence per feature .
                             care tip (only with fewer than 4 features) . price . call to action
* Chinese follows the same skeleton, measured in characters (short 40-70, medium 70-120, long 120-170).
* The hook, the wording around material/colour/features/price and the call to action depend on the tone;
  the hook tail, material/colour benefit, scene and care sentences depend on the category; feature
  sentences reuse the row's features with a benefit clause attached to each feature.
* Each slot has 2-4 phrasings picked at random; phrasings (and, failing that, the feature draw) are
  re-sampled until the description lands in its length class.

Usage:  python examples/ecommerce/make_dataset.py [--out-dir DIR]
Writes products.csv (training pool) and products_test.csv (held out) and prints quality statistics.
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import time
from collections import Counter
from pathlib import Path

SEED = 20250131
N_TRAIN_PER_CATEGORY = 56
N_TEST_PER_CATEGORY = 6
COLUMNS = ["sku", "category", "name", "brand", "material", "color", "features", "price", "tone", "length",
           "lang", "description"]
TONES = ["friendly", "professional", "luxury", "playful", "minimal"]
LENGTHS = ["short", "medium", "long"]
# Target size of a description: words for English, characters for Chinese.
LENGTH_RANGE = {
    "en": {"short": (25, 40), "medium": (45, 70), "long": (75, 100)},
    "zh": {"short": (40, 70), "medium": (70, 120), "long": (120, 170)},
}
# How many features a row lists, by length class.
N_FEATURES = {"short": (2, 3), "medium": (2, 3), "long": (3, 4)}

# ---------------------------------------------------------------------------------------------------------
# Materials: key -> (English, Chinese). Products refer to them by key.
# ---------------------------------------------------------------------------------------------------------
MATERIALS = {
    "cotton": ("organic cotton", "有机棉"),
    "bamboo_jersey": ("bamboo jersey", "竹纤维针织面料"),
    "modal": ("soft modal", "柔软莫代尔"),
    "linen": ("washed linen", "水洗亚麻"),
    "linen_cotton": ("linen-cotton blend", "亚麻棉混纺"),
    "fleece": ("brushed fleece", "磨毛抓绒"),
    "recycled_poly": ("recycled polyester", "再生聚酯纤维"),
    "twill": ("cotton twill", "棉质斜纹布"),
    "merino": ("merino wool", "美利奴羊毛"),
    "cashmere_blend": ("cashmere blend", "羊绒混纺"),
    "nylon": ("lightweight nylon", "轻量尼龙"),
    "viscose": ("flowing viscose", "垂坠粘胶纤维"),
    "mesh": ("recycled mesh", "再生网布"),
    "knit_poly": ("knitted polyester", "针织聚酯纤维"),
    "canvas": ("organic canvas", "有机帆布"),
    "leather": ("full-grain leather", "头层牛皮"),
    "suede": ("soft suede", "柔软麂皮"),
    "vegan_leather": ("vegan leather", "纯素皮革"),
    "wool_felt": ("wool felt", "羊毛毡"),
    "webbing": ("recycled webbing", "再生织带"),
    "fleece_cotton": ("fleece-lined cotton", "抓绒内衬棉布"),
    "stainless": ("stainless steel", "不锈钢"),
    "carbon_steel": ("high-carbon steel", "高碳钢"),
    "cast_iron": ("cast iron", "铸铁"),
    "enamel_iron": ("enamelled cast iron", "珐琅铸铁"),
    "glass": ("borosilicate glass", "高硼硅玻璃"),
    "bamboo": ("natural bamboo", "天然竹"),
    "acacia": ("acacia wood", "相思木"),
    "stoneware": ("stoneware", "炻瓷"),
    "silicone": ("food-grade silicone", "食品级硅胶"),
    "anodised": ("hard-anodised aluminium", "硬质氧化铝"),
    "velvet": ("cotton velvet", "棉质丝绒"),
    "boucle": ("boucle wool", "圈圈羊毛"),
    "ceramic": ("glazed ceramic", "釉面陶瓷"),
    "brass": ("brushed brass", "拉丝黄铜"),
    "rattan": ("natural rattan", "天然藤编"),
    "soy_wax": ("natural soy wax", "天然大豆蜡"),
    "oak": ("solid oak", "实木橡木"),
    "wool_blend": ("soft wool blend", "柔软羊毛混纺"),
    "seagrass": ("woven seagrass", "海草编织"),
    "cotton_rope": ("braided cotton rope", "编织棉绳"),
    "aluminium": ("aluminium alloy", "铝合金"),
    "abs": ("impact-resistant ABS", "抗冲击ABS"),
    "braided_nylon": ("braided nylon", "编织尼龙"),
    "liquid_silicone": ("liquid silicone", "液态硅胶"),
    "tpu": ("flexible TPU", "柔性TPU"),
    "fabric": ("recycled fabric", "再生织物"),
    "neoprene": ("neoprene", "潜水料"),
    "shea": ("shea butter", "乳木果油"),
    "squalane": ("plant squalane", "植物角鲨烷"),
    "hyaluronic": ("hyaluronic acid", "玻尿酸"),
    "niacinamide": ("niacinamide", "烟酰胺"),
    "beeswax": ("natural beeswax", "天然蜂蜡"),
    "jojoba": ("jojoba oil", "荷荷巴油"),
    "oat": ("colloidal oat", "胶体燕麦"),
    "biocellulose": ("bio-cellulose", "生物纤维"),
    "zinc": ("mineral zinc oxide", "矿物氧化锌"),
    "aloe": ("aloe vera", "芦荟"),
    "rosehip": ("rosehip oil", "玫瑰果油"),
    "natural_rubber": ("natural rubber", "天然橡胶"),
    "tpe": ("eco TPE", "环保TPE"),
    "cork": ("natural cork", "天然软木"),
    "tritan": ("BPA-free Tritan", "不含双酚A的Tritan"),
    "ripstop": ("ripstop nylon", "防撕裂尼龙"),
    "latex": ("natural latex", "天然乳胶"),
    "carbon": ("carbon fibre", "碳纤维"),
    "cotton_canvas": ("cotton canvas", "棉帆布"),
    "beech": ("solid beechwood", "实心榉木"),
    "toy_plastic": ("BPA-free plastic", "无双酚A塑料"),
    "plush": ("super-soft plush", "超柔毛绒"),
    "birch": ("birch plywood", "桦木多层板"),
    "pigment": ("washable pigment", "可水洗颜料"),
    "cardboard": ("recycled cardboard", "再生纸板"),
    "paper": ("recycled paper", "再生纸"),
    "cloth_board": ("cloth-bound board", "布面硬壳"),
    "resin": ("polished resin", "抛光树脂"),
    "recycled_plastic": ("recycled plastic", "再生塑料"),
    "steel_sheet": ("powder-coated steel", "烤漆钢板"),
    "rice_paper": ("rice paper", "米纸"),
    "art_paper": ("acid-free drawing paper", "无酸绘画纸"),
    "memory_foam": ("memory foam", "记忆棉"),
    "corrugated": ("corrugated cardboard", "瓦楞纸板"),
    "sisal": ("natural sisal", "天然剑麻"),
    "nylon_webbing": ("nylon webbing", "尼龙织带"),
    "crinkle_poly": ("crinkle polyester", "沙沙纸聚酯布"),
    "oxford": ("waterproof Oxford cloth", "防水牛津布"),
}


def F(en: str, en_benefit: str, zh: str, zh_benefit: str) -> dict:
    """A feature with the benefit clause that follows it (English verb phrase / Chinese clause)."""
    return {"en": en, "en_b": en_benefit, "zh": zh, "zh_b": zh_benefit}


def P(en: str, zh: str, lo: int, hi: int, materials: str, *features: dict) -> dict:
    """A product type: English / Chinese noun, price range in yuan, material keys, specific features."""
    return {"en": en, "zh": zh, "lo": lo, "hi": hi, "materials": materials.split(), "features": list(features)}


# ---------------------------------------------------------------------------------------------------------
# Category banks
# ---------------------------------------------------------------------------------------------------------
CATEGORIES: dict[str, dict] = {
    "apparel": {
        "code": "APP",
        "brands": ["Loomwell", "Threadvale", "Kestine", "Palemoor", "Norrow & Pine"],
        "colors": [("charcoal", "炭灰色"), ("oat beige", "燕麦色"), ("navy", "藏青色"), ("sage green", "鼠尾草绿"),
                   ("off-white", "米白色"), ("rust orange", "铁锈橙"), ("heather grey", "麻灰色"),
                   ("dusty rose", "烟粉色")],
        "products": [
            P("Crewneck Tee", "圆领T恤", 59, 149, "cotton bamboo_jersey modal",
              F("tag-free neckline", "stops any scratching at the back of the neck", "无标签领口", "后颈不再刺痒"),
              F("double-stitched hem", "stays flat after every wash", "双线缝制下摆", "多次洗涤依然平整")),
            P("Linen Shirt", "亚麻衬衫", 129, 299, "linen linen_cotton",
              F("curved hem", "looks neat tucked in or worn loose", "弧形下摆", "塞进裤腰或自然垂落都好看"),
              F("chest pocket", "keeps sunglasses or a pen close at hand", "胸前口袋", "随手放墨镜或笔")),
            P("Zip Hoodie", "拉链连帽衫", 159, 329, "fleece cotton recycled_poly",
              F("two-way zip", "opens from the top or the bottom", "双向拉链", "上下都能拉开"),
              F("lined hood", "keeps your ears warm on windy mornings", "加绒帽子", "有风的早晨也能护住耳朵")),
            P("Tapered Chino", "休闲卡其裤", 149, 299, "twill cotton",
              F("stretch waistband", "moves with you when you sit or bend", "弹力腰头", "坐下弯腰都不紧绷"),
              F("deep side pocket", "holds a phone without letting it slip out", "加深侧袋", "手机放进去也不易滑出")),
            P("Knit Cardigan", "针织开衫", 179, 399, "merino cotton cashmere_blend",
              F("horn-effect button placket", "adds a warm, natural detail to the front", "仿牛角纽扣门襟",
                "为前襟增添自然质感"),
              F("ribbed cuff", "stays put when you push up the sleeves", "罗纹袖口", "挽起袖子也不易滑落")),
            P("Quilted Vest", "绗缝马甲", 199, 429, "recycled_poly nylon",
              F("lightweight padding layer", "traps warmth without adding bulk", "轻薄填充层", "保暖却不显臃肿"),
              F("snap-button front", "closes in a second even with cold fingers", "按扣门襟", "手冷时也能一秒扣好")),
            P("Wrap Dress", "裹身连衣裙", 189, 459, "viscose linen modal",
              F("adjustable tie waist", "lets you shape the fit just how you like it", "可调节系带腰", "随心调整腰身"),
              F("midi-length skirt", "works for office days and dinners out", "中长裙摆", "通勤约会都合适")),
            P("Rain Jacket", "防雨夹克", 259, 599, "nylon recycled_poly",
              F("taped seam", "stops water from creeping through the stitching", "压胶接缝", "雨水不会从缝线渗入"),
              F("packable hood", "tucks into the collar when the sun comes out", "可收纳兜帽", "天晴时可收进领口")),
        ],
        "features": [
            F("breathable weave", "keeps you cool when the day warms up", "透气织法", "天热也清爽不闷"),
            F("relaxed fit", "gives you room to move without looking baggy", "宽松版型", "活动自如又不显邋遢"),
            F("reinforced seam", "stands up to years of washing", "加固缝线", "经得起长年洗涤"),
            F("wrinkle-resistant finish", "looks neat straight out of the bag", "抗皱处理", "从包里拿出来依然平整"),
            F("hidden zip pocket", "keeps cards and keys secure", "隐形拉链袋", "卡片钥匙放得安心"),
            F("pre-shrunk fabric", "holds its size after the first wash", "预缩面料", "洗后不易缩水"),
        ],
        "tails": ["an everyday layer that works hard", "a staple you will wear on repeat",
                  "an easy piece from morning to night", "a relaxed essential for every season"],
        "mc": ["feels soft from the first wear", "keeps its shape wash after wash",
               "drapes nicely without clinging", "looks sharp with jeans or trousers"],
        "scenes": ["Whether you are heading to the office or meeting friends for dinner, it fits right in.",
                   "Wear it on its own in spring or layer it up when the weather turns cold.",
                   "It packs flat, so it is an easy pick for weekend trips.",
                   "Pair it with sneakers for the weekend or loafers for a smarter look."],
        "care": ["Machine wash cold and hang to dry to keep it looking its best.",
                 "A cool wash and a gentle press are all it needs.",
                 "It washes well and dries quickly, so it is always ready to wear."],
        "zh_tails": ["每天都想穿的百搭单品", "自在舒服的日常之选", "四季皆宜的基础款"],
        "zh_mc": ["上身柔软亲肤", "久洗依然有型", "垂坠自然不贴身", "怎么搭都利落"],
        "zh_scenes": ["无论是去办公室还是和朋友聚餐，它都能轻松应对。", "春天单穿，天凉叠穿，一件搞定。",
                      "折叠后不占地方，出差旅行带上正合适。"],
        "zh_care": ["建议冷水机洗、挂起晾干，保持最佳状态。", "轻柔洗涤、低温熨烫即可。"],
    },
    "footwear": {
        "code": "FTW",
        "brands": ["Stridewick", "Cobbleton", "Pathra", "Soleborne", "Marrowfield"],
        "colors": [("tan", "浅棕色"), ("black", "黑色"), ("chalk white", "粉笔白"), ("olive", "橄榄绿"),
                   ("cognac brown", "干邑棕"), ("slate grey", "石板灰"), ("navy", "藏青色"), ("sand", "沙色")],
        "products": [
            P("Trail Runner", "越野跑鞋", 299, 599, "mesh knit_poly",
              F("lugged tread", "bites into mud and loose gravel", "齿纹鞋底", "泥地碎石都抓得稳"),
              F("toe bumper", "protects your toes from rocks and roots", "防撞鞋头", "保护脚趾免受磕碰")),
            P("Canvas Sneaker", "帆布鞋", 149, 299, "canvas",
              F("vulcanised sole", "gives a flexible, close-to-the-ground feel", "硫化鞋底", "柔韧贴地"),
              F("metal eyelet set", "keeps the laces from fraying", "金属鞋眼", "鞋带不易磨损")),
            P("Leather Loafer", "皮革乐福鞋", 329, 699, "leather suede",
              F("stitched welt", "makes resoling simple when the sole wears down", "缝线沿条", "鞋底磨损后可以重新换底"),
              F("leather-lined interior", "feels smooth against bare feet", "真皮内里", "光脚穿也顺滑舒适")),
            P("Chelsea Boot", "切尔西靴", 399, 799, "leather suede vegan_leather",
              F("elastic side panel", "makes pulling it on and off easy", "侧边松紧带", "穿脱轻松"),
              F("stacked heel", "adds a little height and a confident stride", "叠层鞋跟", "增高一点，步伐更自信")),
            P("Slip-On Mule", "一脚蹬穆勒鞋", 159, 329, "suede vegan_leather wool_felt",
              F("open back", "slides on without any bending down", "后空设计", "不用弯腰也能穿上"),
              F("contoured footbed", "supports the natural arch of your foot", "贴合足弓鞋垫", "贴合足弓自然曲线")),
            P("Walking Sandal", "户外凉鞋", 129, 279, "webbing vegan_leather",
              F("adjustable strap", "locks in the fit on uneven paths", "可调节绑带", "走在不平的路上也稳稳贴脚"),
              F("quick-dry footbed", "dries fast after a splash", "速干鞋垫", "沾水后很快就干")),
            P("House Slipper", "居家拖鞋", 69, 159, "wool_felt fleece_cotton",
              F("memory foam insole", "cushions your feet after a long day", "记忆棉鞋垫", "忙碌一天后温柔包裹双脚"),
              F("quiet sole", "keeps footsteps soft on hard floors", "静音鞋底", "在硬地板上走动也很安静")),
            P("Court Trainer", "复古板鞋", 229, 459, "leather vegan_leather canvas",
              F("perforated toe", "lets air flow on warm days", "打孔鞋头", "天热时透气不闷"),
              F("cupsole construction", "gives steady support with every step", "杯底结构", "每一步都稳稳支撑")),
        ],
        "features": [
            F("cushioned insole", "softens every step on hard pavements", "缓震鞋垫", "走在硬路面上也柔软"),
            F("grippy rubber outsole", "holds steady on wet ground", "防滑橡胶大底", "雨天路面也抓地稳"),
            F("padded collar", "keeps the heel comfortable and blister-free", "加厚鞋口", "保护脚跟不磨脚"),
            F("breathable lining", "keeps feet cool and fresh all day", "透气内里", "双脚全天清爽"),
            F("lightweight midsole", "adds spring without extra weight", "轻量中底", "轻盈又有回弹"),
            F("pull-on heel loop", "helps you get ready in seconds", "后跟提环", "几秒就能穿好"),
        ],
        "tails": ["a go-to pair for busy days", "an easy pair that goes with everything",
                  "a comfortable pair made for walking", "a smart pair that never feels stiff"],
        "mc": ["feels broken-in from day one", "moulds gently to your foot",
               "stays comfortable from first step to last", "holds up well to daily wear"],
        "scenes": ["From the morning commute to a long weekend walk, it keeps you comfortable.",
                   "It looks just as good with cropped trousers as it does with jeans.",
                   "Slip it on for city errands, park strolls or a casual Friday at work.",
                   "It is the pair you will grab when you need to be on your feet all day."],
        "care": ["Wipe clean with a damp cloth and let it air dry away from direct heat.",
                 "A soft brush and the occasional conditioner keep it looking fresh.",
                 "Store it with a shoe tree to help it keep its shape."],
        "zh_tails": ["忙碌日子的首选好鞋", "百搭好穿的日常鞋履", "久走不累的舒适之选"],
        "zh_mc": ["初穿就很跟脚", "贴合双脚曲线", "从早到晚都舒适", "经得起日常穿着"],
        "zh_scenes": ["从早高峰通勤到周末长距离散步，它都让你走得舒服。", "搭配九分裤或牛仔裤都很好看。",
                      "逛街、散步、休闲周五上班，穿上就出门。"],
        "zh_care": ["用湿布擦拭后自然阴干，避免暴晒。", "用软刷清洁，定期护理，常穿常新。"],
    },
    "kitchen": {
        "code": "KIT",
        "brands": ["Hearthwise", "Panterro", "Ladlebrook", "Saltmere", "Copperlane"],
        "colors": [("matte black", "哑光黑"), ("cream", "奶油白"), ("sage green", "鼠尾草绿"), ("brushed silver", "拉丝银"),
                   ("terracotta", "陶土红"), ("ocean blue", "海洋蓝"), ("natural wood", "原木色"), ("white", "白色")],
        "products": [
            P("Chef's Knife", "主厨刀", 159, 459, "stainless carbon_steel",
              F("full-tang blade", "gives a balanced, steady feel when chopping", "全龙骨刀身", "切菜时平衡稳定"),
              F("razor-sharp edge", "glides through tomatoes without squashing them", "锋利刃口", "切番茄也不会压扁")),
            P("Skillet", "煎锅", 199, 399, "cast_iron enamel_iron",
              F("pre-seasoned surface", "is ready to cook on straight out of the box", "预开锅表面", "开箱即可下厨"),
              F("helper handle", "makes a heavy pan easier to lift", "辅助把手", "沉甸甸的锅也好端起")),
            P("Pour-Over Kettle", "手冲壶", 179, 349, "stainless glass",
              F("gooseneck spout", "pours a slow, steady stream for better coffee", "鹅颈壶嘴", "水流细而稳，冲出好咖啡"),
              F("built-in thermometer", "shows the water temperature at a glance", "内置温度计", "水温一目了然")),
            P("Cutting Board", "砧板", 69, 169, "bamboo acacia",
              F("juice groove", "catches spills before they reach the counter", "导流槽", "汁水不会流到台面"),
              F("reversible surface", "gives you one side for meat and one for vegetables", "双面可用设计",
                "生熟分开更卫生")),
            P("Storage Jar", "密封储物罐", 39, 99, "glass stoneware",
              F("airtight lid", "locks in freshness for weeks", "密封盖", "长久锁住新鲜"),
              F("wide opening", "lets you scoop out flour or rice with ease", "宽口设计", "舀面粉大米都方便")),
            P("Mixing Bowl", "搅拌碗", 59, 149, "stoneware stainless glass",
              F("pouring lip", "pours batter cleanly without drips", "倒流嘴", "倒面糊干净不滴漏"),
              F("nesting shape", "stacks neatly inside the cupboard", "可叠放造型", "收纳时整齐叠放")),
            P("Lunch Box", "保温饭盒", 79, 179, "stainless silicone",
              F("leak-proof seal", "keeps soups and sauces where they belong", "防漏密封圈", "汤汤水水也不洒"),
              F("divided compartment", "keeps rice and sides apart", "分格设计", "米饭和菜分开放")),
            P("Saucepan", "奶锅", 189, 399, "stainless anodised",
              F("glass lid", "lets you check on dinner without losing heat", "玻璃锅盖", "不用开盖就能看到锅里"),
              F("induction-ready base", "works on every type of hob", "电磁炉适用锅底", "各种炉灶都能用")),
        ],
        "features": [
            F("dishwasher-safe build", "makes cleanup quick after a big meal", "可洗碗机清洗", "饭后清洁轻松快捷"),
            F("ergonomic handle", "sits comfortably in the hand during long prep sessions", "人体工学手柄",
              "长时间备菜也握得舒服"),
            F("food-safe finish", "keeps your ingredients free of unwanted tastes", "食品级表面", "不串味更安心"),
            F("easy-clean surface", "wipes clean in seconds", "易清洁表面", "轻轻一擦就干净"),
            F("gift-ready box", "makes it an easy present for any home cook", "礼盒包装", "送给爱下厨的朋友正合适"),
        ],
        "tails": ["a kitchen workhorse for every day", "a reliable helper for everyday cooking",
                  "a simple upgrade for your kitchen", "a small tool that makes cooking easier"],
        "mc": ["looks good left out on the counter", "is built for years of daily use",
               "brings a clean look to your kitchen", "is easy to care for"],
        "scenes": ["From quick weekday breakfasts to slow Sunday dinners, it is always ready.",
                   "It is just as useful in a first apartment as in a busy family kitchen.",
                   "Keep it within reach and you will wonder how you cooked without it.",
                   "It makes a thoughtful housewarming gift for anyone who loves to cook."],
        "care": ["Wash by hand with warm soapy water and dry it straight away.",
                 "Rinse after use and let it dry fully before putting it away.",
                 "A quick wipe after each use keeps it looking new."],
        "zh_tails": ["天天用得上的厨房帮手", "日常下厨的可靠伙伴", "厨房里的小小升级"],
        "zh_mc": ["摆在台面也好看", "经久耐用", "让厨房干净清爽", "用完好打理"],
        "zh_scenes": ["从工作日的快手早餐到周末的慢炖晚餐，它随时待命。",
                      "无论是第一次布置的小厨房，还是热闹的家庭厨房，它都很实用。",
                      "送给喜欢下厨的朋友，也是一份贴心的乔迁礼物。"],
        "zh_care": ["用温水和洗洁精手洗后及时擦干即可。", "使用后冲洗并彻底晾干再收纳。"],
    },
    "home decor": {
        "code": "HOM",
        "brands": ["Nestora", "Wickhollow", "Driftalia", "Hearthen", "Lumbrecht"],
        "colors": [("ivory", "象牙白"), ("charcoal", "炭灰色"), ("moss green", "苔藓绿"), ("mustard yellow", "芥末黄"),
                   ("dusky blue", "雾霾蓝"), ("blush pink", "浅粉色"), ("walnut brown", "胡桃棕"), ("sand", "沙色")],
        "products": [
            P("Throw Pillow", "抱枕", 59, 159, "linen velvet boucle",
              F("hidden zip", "lets you remove the cover for washing", "隐形拉链", "外套可拆洗"),
              F("plump insert", "keeps its loft day after day", "饱满填充芯", "久靠不塌")),
            P("Table Lamp", "台灯", 199, 459, "ceramic brass rattan",
              F("linen shade", "spreads a soft, warm glow", "亚麻灯罩", "洒下柔和温暖的光"),
              F("dimmer switch", "lets you set the mood in a moment", "调光开关", "一键调节氛围")),
            P("Scented Candle", "香薰蜡烛", 69, 189, "soy_wax",
              F("cotton wick", "burns cleanly with very little smoke", "棉质烛芯", "燃烧干净少烟"),
              F("reusable glass vessel", "becomes a little plant pot once the candle is done", "可重复使用的玻璃杯",
                "蜡烛燃尽后还能当小花器")),
            P("Wall Mirror", "装饰挂镜", 259, 599, "oak brass rattan",
              F("bevelled edge", "catches the light beautifully", "斜边镜面", "折射出漂亮的光泽"),
              F("ready-to-hang hook", "goes up on the wall in minutes", "挂钩已安装", "几分钟就能挂好")),
            P("Bud Vase", "花瓶", 79, 229, "ceramic stoneware",
              F("narrow neck", "holds a single stem upright", "细口瓶颈", "一枝花也能立得笔直"),
              F("watertight glaze", "keeps fresh flowers without any leaks", "防水釉面", "插鲜花也不渗水")),
            P("Throw Blanket", "盖毯", 159, 359, "cotton wool_blend",
              F("tasselled edge", "adds a relaxed, handmade touch", "流苏边", "增添随性手作感"),
              F("generous size", "covers two people on the sofa", "大尺寸", "沙发上两个人盖也够")),
            P("Photo Frame", "相框", 49, 129, "oak brass",
              F("easel back", "stands on a shelf or hangs on a wall", "支架背板", "可立可挂"),
              F("real glass front", "keeps photos clear and protected", "真玻璃面板", "照片清晰不褪色")),
            P("Storage Basket", "收纳篮", 69, 169, "rattan seagrass cotton_rope",
              F("sturdy handle", "makes it easy to carry from room to room", "结实提手", "在房间之间搬动很方便"),
              F("removable liner", "stops small items from slipping through", "可拆内衬", "小物件不会漏出")),
        ],
        "features": [
            F("neutral design", "blends easily with any interior style", "百搭设计", "轻松融入各种家居风格"),
            F("gift-ready box", "makes it a lovely present for a new home", "礼盒包装", "当作乔迁礼物很体面"),
            F("durable build", "is made to be enjoyed for years", "耐用做工", "可以陪伴你很多年"),
            F("easy-care finish", "needs only a quick dust to stay fresh", "易打理表面", "轻轻擦拭即可保持清洁"),
        ],
        "tails": ["a simple way to make home feel yours", "a quiet accent that warms any room",
                  "a finishing touch for your favourite corner", "an easy update for any shelf"],
        "mc": ["adds warmth and texture to any room", "suits modern and classic interiors alike",
               "looks even better in natural light", "brings a calm feel to your space"],
        "scenes": ["Place it in the living room, bedroom or hallway and watch the space come together.",
                   "It looks just as good in a small rented flat as in a spacious family home.",
                   "Style it with books, plants or candles for an easy, layered look.",
                   "It makes a thoughtful gift for housewarmings and birthdays."],
        "care": ["Dust gently with a soft, dry cloth to keep it looking its best.",
                 "Keep it out of strong direct sunlight to protect the colour.",
                 "Spot clean with a damp cloth whenever needed."],
        "zh_tails": ["让家更有你味道的小物", "为房间添温度的点缀", "角落里的点睛之笔"],
        "zh_mc": ["为房间增添质感", "现代古典都能驾驭", "自然光下更好看", "让空间安静有序"],
        "zh_scenes": ["放在客厅、卧室或玄关，空间立刻变得协调。", "小小出租屋或宽敞的家，摆上都好看。",
                      "搭配书本、绿植或蜡烛，轻松营造层次感。"],
        "zh_care": ["用柔软干布轻轻除尘即可。", "避免阳光长时间直射，保护色泽。"],
    },
    "electronics accessories": {
        "code": "ELA",
        "brands": ["Ampervale", "Kinetra Labs", "Cableon", "Wattrow", "Ohmfield"],
        "colors": [("space grey", "深空灰"), ("white", "白色"), ("midnight blue", "午夜蓝"), ("graphite", "石墨黑"),
                   ("mint green", "薄荷绿"), ("coral", "珊瑚橙"), ("sand", "沙色"), ("black", "黑色")],
        "products": [
            P("Power Bank", "充电宝", 129, 299, "aluminium abs",
              F("20000 mAh battery", "charges a phone about four times", "20000毫安大容量", "可为手机充电约四次"),
              F("dual USB-C port", "charges a phone and a tablet at the same time", "双USB-C接口", "手机平板同时充")),
            P("Charging Cable", "充电线", 39, 99, "braided_nylon liquid_silicone",
              F("reinforced connector", "survives thousands of bends", "加固接头", "经得起上万次弯折"),
              F("fast-charge chip", "tops up your phone in a coffee break", "快充芯片", "一杯咖啡的工夫就能充上不少电")),
            P("Phone Case", "手机壳", 59, 149, "liquid_silicone tpu vegan_leather",
              F("raised camera lip", "protects the lens from scratches", "镜头凸起保护边", "防止镜头刮花"),
              F("shock-absorbing frame", "takes the hit when your phone slips", "防摔边框", "手机滑落时缓冲撞击")),
            P("Wireless Charger", "无线充电板", 99, 229, "aluminium abs fabric",
              F("magnetic alignment ring", "snaps your phone into the right spot", "磁吸对位环", "手机一放就对准"),
              F("soft status light", "stays gentle enough for the bedside table", "柔和指示灯", "放在床头也不刺眼")),
            P("Laptop Sleeve", "电脑内胆包", 99, 229, "neoprene wool_felt vegan_leather",
              F("plush inner lining", "guards against scratches and bumps", "柔软内衬", "防刮防磕"),
              F("front accessory pocket", "holds a charger and a mouse", "前置配件袋", "充电器鼠标都能装")),
            P("Earbuds Case", "耳机保护套", 39, 99, "liquid_silicone tpu",
              F("keychain clip", "hooks onto your bag or belt loop", "钥匙扣挂钩", "挂在包上或腰带上"),
              F("charging cut-out", "lets you charge without taking it off", "充电开孔", "不用取下就能充电")),
            P("Laptop Stand", "笔记本支架", 89, 229, "aluminium abs",
              F("height-adjustable arm", "raises your screen to eye level", "可调节支撑臂", "把屏幕抬到视线高度"),
              F("foldable frame", "slips into a backpack when you travel", "可折叠机身", "出门一折就能放进背包")),
            P("Tech Pouch", "数码收纳包", 49, 129, "fabric vegan_leather",
              F("elastic loop panel", "gives every cable its own place", "弹力绑带分区", "每根线都有自己的位置"),
              F("water-resistant zip", "keeps dust and drizzle out", "防泼水拉链", "防尘又防小雨")),
        ],
        "features": [
            F("slim profile", "slips easily into a pocket or bag", "纤薄机身", "轻松放进口袋或包里"),
            F("universal design", "works with most phones and laptops", "通用设计", "适配大多数手机和电脑"),
            F("12-month warranty", "gives you peace of mind", "12个月质保", "用得更安心"),
            F("travel-friendly size", "fits neatly into a carry-on", "便携尺寸", "随身行李轻松装下"),
            F("scratch-resistant coating", "keeps it looking new for longer", "防刮涂层", "长久如新"),
        ],
        "tails": ["a small upgrade for your tech life", "a smart companion for everyday devices",
                  "a reliable add-on for work and travel", "a neat fix for busy digital days"],
        "mc": ["feels solid without adding weight", "matches the clean lines of modern devices",
               "is built to survive daily commutes", "looks tidy on any desk"],
        "scenes": ["Toss it in your bag for the office, the cafe or a long flight.",
                   "It keeps your desk tidy and your devices ready when you need them.",
                   "It is the kind of accessory you soon wonder how you lived without.",
                   "From morning meetings to late-night streaming, it just works."],
        "care": ["Wipe it with a dry cloth and keep it away from moisture.",
                 "Keep it away from extreme heat to protect its performance.",
                 "A quick wipe now and then keeps it looking sharp."],
        "zh_tails": ["数码生活的小升级", "日常设备的贴心搭档", "出行必备的实用配件"],
        "zh_mc": ["手感扎实不笨重", "与设备线条相配", "经得起通勤考验", "放在桌上很利落"],
        "zh_scenes": ["无论去办公室、咖啡馆还是长途飞行，放进包里就出发。", "让桌面更整洁，设备随时待命。",
                      "从早会到深夜追剧，它都稳定可靠。"],
        "zh_care": ["用干布擦拭，避免受潮。", "远离高温环境，性能更持久。"],
    },
    "beauty and skincare": {
        "code": "BTY",
        "brands": ["Dewmere", "Velorae", "Balmhaven", "Ondelle", "Florisque"],
        "colors": [("pearl white", "珍珠白"), ("blush pink", "浅粉色"), ("amber", "琥珀色"), ("sage green", "鼠尾草绿"),
                   ("lavender", "薰衣草紫"), ("peach", "蜜桃色")],
        "products": [
            P("Face Cream", "面霜", 129, 329, "shea squalane",
              F("lightweight texture", "sinks in fast without feeling greasy", "轻盈质地", "吸收快不油腻"),
              F("airless pump", "keeps the formula fresh to the last drop", "真空按压泵", "用到最后一滴都新鲜")),
            P("Hydrating Serum", "保湿精华", 149, 399, "hyaluronic niacinamide",
              F("glass dropper", "measures out just the right amount", "玻璃滴管", "精准取用"),
              F("fragrance-free formula", "suits even sensitive skin", "无香精配方", "敏感肌也能用")),
            P("Lip Balm", "润唇膏", 29, 79, "beeswax shea",
              F("slim twist-up tube", "slips into any pocket", "纤细旋转管", "口袋里随手一放"),
              F("sheer tint", "adds a hint of natural colour", "淡淡润色", "带来自然好气色")),
            P("Cleansing Balm", "卸妆膏", 99, 229, "jojoba squalane",
              F("melting texture", "turns to a silky oil on warm skin", "融化质地", "遇肤温化为丝滑油状"),
              F("included spatula", "keeps fingers out of the jar", "附赠挖勺", "取用更卫生")),
            P("Hand Cream", "护手霜", 39, 119, "shea oat",
              F("non-sticky finish", "lets you type straight after applying", "不黏腻肤感", "涂完马上就能打字"),
              F("travel-size tube", "fits in a coat pocket or clutch", "便携小管", "大衣口袋或手包都放得下")),
            P("Sheet Mask Set", "面膜套装", 69, 169, "biocellulose cotton",
              F("serum-soaked sheet", "delivers a quick burst of moisture", "浸满精华的膜布", "快速补水"),
              F("ten-pack box", "covers two weeks of weekday pampering", "十片装", "够用两周的工作日护理")),
            P("Sunscreen Lotion", "防晒乳", 89, 199, "zinc aloe",
              F("broad-spectrum SPF 50 filter", "shields skin on bright days", "广谱SPF50防护", "晴天也能安心出门"),
              F("water-resistant formula", "stays put through a swim or a sweaty walk", "防水配方", "游泳出汗依然持久")),
            P("Body Oil", "身体精油", 119, 279, "jojoba rosehip",
              F("dry-touch finish", "leaves skin soft, never slick", "干爽肤感", "滋润却不油腻"),
              F("calming herbal scent", "turns your routine into a small ritual", "舒缓草本香气", "让护肤成为一种小小仪式")),
        ],
        "features": [
            F("dermatologist-tested formula", "is gentle enough for daily use", "经皮肤测试配方", "温和适合每日使用"),
            F("vegan recipe", "contains no animal-derived ingredients", "纯素配方", "不含动物来源成分"),
            F("recyclable package", "helps cut down on waste", "可回收包装", "减少浪费"),
            F("cruelty-free promise", "means no animal testing at any stage", "零动物实验承诺", "全程不做动物实验"),
        ],
        "tails": ["a gentle step for your daily routine", "a little ritual for healthy-looking skin",
                  "a simple way to care for your skin", "a calm moment of self-care"],
        "mc": ["leaves skin soft and comfortable", "looks lovely on a bathroom shelf",
               "feels gentle even on sensitive days", "keeps skin feeling fresh for hours"],
        "scenes": ["Use it morning and night, or whenever your skin needs a little extra care.",
                   "It fits neatly into a gym bag, a carry-on or a desk drawer.",
                   "It is a kind treat for yourself and a lovely gift for a friend.",
                   "Make it part of your evening wind-down and enjoy the calm."],
        "care": ["Store it in a cool, dry place away from direct sunlight.",
                 "Keep the lid closed tightly after each use.",
                 "For best results, use it within twelve months of opening."],
        "zh_tails": ["日常护肤的温和一步", "好气色的小小仪式", "忙碌中的放松时光"],
        "zh_mc": ["让肌肤柔软舒适", "摆在梳妆台很好看", "敏感时期也温和", "全天清爽不黏"],
        "zh_scenes": ["早晚使用，或在肌肤需要时随时补充。", "健身包、登机箱、办公桌抽屉都放得下。",
                      "犒劳自己或送给朋友都很合适。"],
        "zh_care": ["请存放于阴凉干燥处，避免阳光直射。", "每次用完请拧紧盖子。"],
    },
    "outdoor and sports": {
        "code": "OUT",
        "brands": ["Trailvane", "Cragmoor", "Summitra", "Fellwick", "Northbrae"],
        "colors": [("forest green", "森林绿"), ("bright orange", "亮橙色"), ("slate blue", "石板蓝"), ("khaki", "卡其色"),
                   ("black", "黑色"), ("signal red", "信号红"), ("glacier white", "冰川白"), ("sand", "沙色")],
        "products": [
            P("Yoga Mat", "瑜伽垫", 129, 329, "natural_rubber tpe cork",
              F("alignment line", "helps you place hands and feet correctly", "体位线", "帮你找准手脚位置"),
              F("carry strap", "makes the trip to class easy", "背带", "去上课带着方便")),
            P("Water Bottle", "运动水壶", 69, 169, "stainless tritan",
              F("double-wall body", "keeps drinks cold for a full day", "双层真空杯身", "冷饮保冷一整天"),
              F("leak-proof cap", "rides safely in your bag", "防漏杯盖", "放进包里也不漏")),
            P("Daypack", "双肩背包", 199, 429, "ripstop recycled_poly",
              F("padded back panel", "stays comfortable on long hikes", "加厚背板", "长途徒步也舒适"),
              F("hydration sleeve", "holds a water bladder on the trail", "水袋仓", "可放置徒步水袋")),
            P("Camping Lantern", "露营灯", 99, 249, "aluminium abs",
              F("three-mode dial", "switches between reading, campsite and night light", "三档调光旋钮",
                "阅读、营地、夜灯模式随心切换"),
              F("rechargeable battery", "lasts through a full weekend", "可充电电池", "续航整个周末")),
            P("Resistance Band Set", "弹力带套装", 59, 149, "latex fabric",
              F("five-band range", "takes you from warm-up to hard training", "五档阻力", "从热身到高强度训练全覆盖"),
              F("door anchor", "turns any doorway into a home gym", "门扣锚点", "任何门框都能变成家庭健身房")),
            P("Trekking Pole", "登山杖", 149, 329, "aluminium carbon",
              F("cork grip", "stays comfortable in sweaty hands", "软木握把", "手心出汗也握得舒服"),
              F("quick-lock clamp", "adjusts the length in seconds", "快锁扣", "几秒钟调好长度")),
            P("Picnic Blanket", "野餐垫", 89, 199, "recycled_poly cotton_canvas",
              F("waterproof backing", "keeps damp grass from soaking through", "防水底层", "潮湿草地也不渗水"),
              F("roll-up strap", "packs it down to the size of a loaf of bread", "卷收绑带", "卷起来只有一条面包大小")),
            P("Running Cap", "跑步帽", 59, 129, "recycled_poly nylon",
              F("sweat-wicking band", "keeps sweat out of your eyes", "吸汗内衬", "汗水不流进眼睛"),
              F("reflective trim", "helps drivers see you at dusk", "反光条", "傍晚跑步更安全")),
        ],
        "features": [
            F("lightweight build", "keeps your load easy on long days", "轻量化设计", "长时间携带也轻松"),
            F("weather-ready finish", "handles sun, wind and light rain", "耐候处理", "日晒风吹小雨都不怕"),
            F("easy-clean surface", "rinses off after muddy outings", "易清洁表面", "沾泥后冲一冲就干净"),
            F("two-year warranty", "backs you on every adventure", "两年质保", "每次出发都安心"),
        ],
        "tails": ["a dependable partner for your next adventure", "a trusty piece of weekend kit",
                  "an easy way to stay active anywhere", "a tough companion for trails and gyms"],
        "mc": ["shrugs off rough handling and bad weather", "stays light enough to carry all day",
               "is easy to spot in your gear pile", "is built for real use"],
        "scenes": ["Take it on morning runs, weekend hikes or a lazy afternoon in the park.",
                   "It is ready for the gym, the trail or the campsite.",
                   "Pack it the night before and you are set for an early start.",
                   "It handles city parks and mountain paths with equal ease."],
        "care": ["Rinse it with fresh water after use and let it dry in the shade.",
                 "Wipe off dirt after each trip and store it somewhere dry.",
                 "Let it air dry fully before packing it away."],
        "zh_tails": ["冒险路上的可靠伙伴", "周末户外的得力装备", "随时运动的好帮手"],
        "zh_mc": ["不怕磕碰和坏天气", "轻到可全天携带", "装备堆里一眼可见", "为真实使用而生"],
        "zh_scenes": ["晨跑、周末徒步或公园里的悠闲午后，都可以带上它。", "健身房、山路、营地，它都准备好了。",
                      "城市公园和山间小路，它都能轻松应对。"],
        "zh_care": ["使用后用清水冲洗，阴凉处晾干。", "每次出行后擦去污渍，存放在干燥处。"],
    },
    "toys": {
        "code": "TOY",
        "brands": ["Puddlejump", "Wobbleton", "Tinkerbrook", "Kiddlewick", "Marblemoon"],
        "colors": [("rainbow", "彩虹色"), ("sunny yellow", "阳光黄"), ("sky blue", "天空蓝"), ("mint", "薄荷绿"),
                   ("cherry red", "樱桃红"), ("natural wood", "原木色"), ("lilac", "淡紫色"), ("tangerine", "橘色")],
        "products": [
            P("Building Block Set", "积木套装", 99, 299, "beech toy_plastic",
              F("100-piece set", "gives little builders plenty to work with", "100块积木", "小小建筑师尽情发挥"),
              F("storage tub", "makes tidy-up time quick", "收纳桶", "收拾起来又快又方便")),
            P("Plush Bear", "毛绒小熊", 59, 159, "plush cotton",
              F("embroidered face", "is safe for even the youngest cuddlers", "刺绣五官", "小宝宝抱着也安全"),
              F("huggable size", "fits perfectly in small arms", "适合拥抱的尺寸", "刚好被小手臂抱住")),
            P("Wooden Puzzle", "木质拼图", 49, 129, "beech birch",
              F("chunky knob design", "helps small hands lift each piece", "大抓手设计", "方便小手拿起每一块"),
              F("picture guide", "shows where every shape belongs", "图案提示", "每块的位置一目了然")),
            P("Remote Control Car", "遥控车", 159, 399, "toy_plastic",
              F("rechargeable battery pack", "keeps the fun going for forty minutes", "可充电电池", "一次可以畅玩四十分钟"),
              F("all-terrain tyre set", "grips grass, sand and carpet", "全地形轮胎", "草地沙地地毯都能跑")),
            P("Art Kit", "儿童绘画套装", 79, 199, "pigment cardboard",
              F("carry case", "keeps every crayon in its place", "收纳手提盒", "每支画笔都有固定位置"),
              F("washable formula", "wipes off tables, hands and clothes", "可水洗配方", "桌面手上衣服都能洗掉")),
            P("Stacking Tower", "彩虹叠叠塔", 49, 129, "beech silicone",
              F("rounded edge", "keeps little fingers safe", "圆润边角", "保护小手指"),
              F("colour sorting game", "teaches sizes and shades through play", "颜色分类玩法", "在游戏中认识大小和颜色")),
            P("Delta Kite", "三角风筝", 59, 159, "ripstop",
              F("tangle-free line", "gets you flying in minutes", "防缠绕风筝线", "几分钟就能放飞"),
              F("easy-launch frame", "lifts off even in a light breeze", "易起飞骨架", "微风中也能轻松起飞")),
            P("Play Kitchen Set", "过家家厨房套装", 129, 329, "birch toy_plastic",
              F("clicking knob", "makes pretend cooking feel real", "会咔哒响的旋钮", "让过家家更逼真"),
              F("pretend food bundle", "sparks hours of role play", "仿真食物配件", "激发长时间角色扮演")),
        ],
        "features": [
            F("child-safe finish", "is non-toxic and tested for little ones", "儿童安全涂层", "无毒环保，专为孩子检测"),
            F("gift-ready box", "makes birthdays extra exciting", "礼盒包装", "让生日更惊喜"),
            F("durable design", "survives years of enthusiastic play", "耐玩设计", "经得起多年尽情玩耍"),
            F("screen-free concept", "keeps kids busy without a tablet", "无屏幕玩法", "不用平板也能玩得入迷"),
        ],
        "tails": ["a toy that keeps little hands busy", "a cheerful pick for playtime at home",
                  "a gift children return to again and again", "an easy way to brighten a rainy afternoon"],
        "mc": ["feels sturdy in small hands", "brightens up any playroom", "is built for plenty of play",
               "looks lovely even after playtime"],
        "scenes": ["It is perfect for playdates, rainy afternoons and quiet time before bed.",
                   "Parents can join in too, turning playtime into family time.",
                   "It encourages creativity, patience and a little problem solving.",
                   "It makes a thoughtful gift for birthdays and holidays."],
        "care": ["Wipe clean with a damp cloth and let it air dry.",
                 "Recommended for ages three and up, with an adult nearby.",
                 "Store it in its box to keep every piece together."],
        "zh_tails": ["让小手忙起来的好玩具", "居家玩耍的快乐之选", "孩子一玩再玩的礼物"],
        "zh_mc": ["小手握着很结实", "让游戏区明亮起来", "经得起反复玩耍", "玩完摆着也好看"],
        "zh_scenes": ["适合小伙伴聚会、下雨的午后和睡前的安静时光。", "家长也可以一起玩，把游戏时间变成亲子时光。",
                      "在玩耍中培养创造力和耐心。"],
        "zh_care": ["用湿布擦拭后自然晾干即可。", "建议三岁以上儿童在成人陪同下使用。"],
    },
    "stationery": {
        "code": "STA",
        "brands": ["Quillmere", "Paperlark", "Nibsworth", "Foliora", "Ledgerly"],
        "colors": [("ink blue", "墨水蓝"), ("forest green", "森林绿"), ("burgundy", "酒红色"), ("kraft brown", "牛皮纸色"),
                   ("black", "黑色"), ("lemon yellow", "柠檬黄"), ("blush pink", "浅粉色"), ("graphite grey", "石墨灰")],
        "products": [
            P("Dotted Notebook", "点阵笔记本", 39, 99, "paper cloth_board",
              F("lay-flat binding", "opens fully for easy writing", "平摊装订", "180度摊平书写方便"),
              F("index page", "helps you find your notes fast", "目录页", "快速找到笔记")),
            P("Fountain Pen", "钢笔", 99, 299, "brass resin",
              F("fine steel nib", "lays down a smooth, even line", "细尖钢笔头", "书写顺滑线条均匀"),
              F("converter-ready barrel", "takes bottled ink or cartridges", "可换墨囊笔杆", "瓶装墨水和墨囊都能用")),
            P("Gel Pen Set", "中性笔套装", 29, 79, "recycled_plastic",
              F("quick-dry refill", "stops smudges on the page", "速干笔芯", "书写不易晕染"),
              F("soft rubber grip", "keeps fingers comfortable during long notes", "软胶握位", "长时间记笔记也舒服")),
            P("Desk Organiser", "桌面收纳架", 69, 169, "bamboo steel_sheet",
              F("multi-compartment layout", "gives pens, clips and notes their own spot", "多格布局", "笔、夹子、便签各归其位"),
              F("felt-lined base", "protects your desk from scratches", "毛毡垫底", "保护桌面不被刮花")),
            P("Weekly Planner", "周计划本", 49, 119, "paper cloth_board",
              F("undated layout", "lets you start in any week of the year", "无日期排版", "一年中哪周开始都行"),
              F("ribbon bookmark", "keeps your place every day", "丝带书签", "每天都能快速翻到当页")),
            P("Washi Tape Set", "和纸胶带套装", 29, 69, "rice_paper",
              F("repositionable adhesive", "peels off cleanly if you change your mind", "可重复粘贴背胶", "撕下不留痕"),
              F("six-roll bundle", "gives you patterns for every page", "六卷装", "每一页都有合适的花色")),
            P("Zip Pencil Case", "拉链笔袋", 59, 159, "vegan_leather canvas",
              F("wide-opening zip", "shows everything inside at a glance", "大开口拉链", "里面的东西一目了然"),
              F("inner elastic loop", "keeps favourite pens in place", "内置弹力插口", "心爱的笔各就各位")),
            P("Sketchbook", "素描本", 49, 129, "art_paper cloth_board",
              F("tear-out perforation", "lets you share a sketch without ruining the book", "可撕虚线", "撕下作品不损本子"),
              F("elastic closure", "keeps loose sheets safe in your bag", "松紧带绑扣", "散页放包里也不怕丢")),
        ],
        "features": [
            F("minimal design", "looks good on any desk", "简约设计", "放在哪张书桌上都好看"),
            F("gift-ready sleeve", "makes it an easy present for students and colleagues", "礼品封套", "送同学同事都合适"),
            F("eco-friendly build", "uses recycled and responsibly sourced materials", "环保用料", "采用再生和负责任来源的材料"),
            F("compact size", "fits neatly into a backpack or tote", "小巧尺寸", "双肩包托特包都放得下"),
        ],
        "tails": ["a small desk upgrade with big impact", "a thoughtful tool for notes and ideas",
                  "an everyday companion for study and work", "a simple way to organise busy days"],
        "mc": ["feels good to pick up every morning", "looks tidy and calm on any desk",
               "is made to be used, not just admired", "adds a quiet bit of colour to your desk"],
        "scenes": ["Use it for meeting notes, weekly plans or late-night journaling.",
                   "It is just as handy in a school bag as it is on an office desk.",
                   "Keep it by your side and let your best ideas find a home.",
                   "It makes a lovely gift for students, teachers and colleagues."],
        "care": ["Keep it away from damp and direct sunlight to protect the colours.",
                 "Store it flat or upright on a shelf when not in use.",
                 "Keep it somewhere dry so it stays in top condition."],
        "zh_tails": ["书桌上的小小升级", "记录灵感的贴心工具", "学习工作的日常伙伴"],
        "zh_mc": ["拿在手里就心情好", "让书桌整洁安静", "为桌面添一抹色彩", "耐用又有格调"],
        "zh_scenes": ["会议记录、周计划或深夜手账都用得上。", "放在书包里或办公桌上都很顺手。",
                      "送给学生、老师或同事都很贴心。"],
        "zh_care": ["避免潮湿和阳光直射，保护纸张与色彩。", "不用时平放或立放在书架上。"],
    },
    "pet supplies": {
        "code": "PET",
        "brands": ["Furrowby", "Wagmoor", "Whiskerdale", "Pawtridge", "Tailbloom"],
        "colors": [("bone white", "骨白色"), ("caramel", "焦糖色"), ("forest green", "森林绿"), ("slate grey", "石板灰"),
                   ("coral", "珊瑚橙"), ("navy", "藏青色"), ("mustard", "芥末黄"), ("sky blue", "天空蓝")],
        "products": [
            P("Dog Bed", "狗窝", 159, 459, "plush cotton_canvas memory_foam",
              F("raised bolster", "gives your dog a pillow to rest on", "加高靠枕边", "狗狗可以把头搁在上面"),
              F("removable cover", "zips off for the washing machine", "可拆卸外套", "拉开拉链就能机洗")),
            P("Cat Scratcher", "猫抓板", 49, 149, "corrugated sisal",
              F("reversible board", "doubles the life of the scratcher", "双面可用", "使用寿命翻倍"),
              F("catnip pouch", "gets shy cats interested fast", "附赠猫薄荷", "害羞的猫咪也会马上感兴趣")),
            P("Walking Leash", "牵引绳", 69, 169, "nylon_webbing leather",
              F("padded handle", "stays comfortable when your dog pulls", "加厚手柄", "狗狗暴冲时也不勒手"),
              F("reflective stripe", "keeps you visible on night walks", "反光条", "夜间遛狗更醒目")),
            P("Raised Pet Bowl", "宠物高脚碗", 39, 99, "stainless ceramic",
              F("non-slip rubber ring", "keeps the bowl from sliding at mealtime", "防滑橡胶圈", "吃饭时碗不乱跑"),
              F("raised stand", "eases strain on your pet's neck", "加高支架", "减轻宠物颈部负担")),
            P("Cat Tunnel", "猫隧道", 59, 149, "crinkle_poly",
              F("crinkle lining", "makes every pounce more exciting", "沙沙响内衬", "每次扑抓都更兴奋"),
              F("collapsible frame", "folds flat for storage", "可折叠骨架", "收纳时可压平")),
            P("Chew Toy", "磨牙玩具", 29, 79, "natural_rubber cotton_rope",
              F("treat pocket", "keeps dogs busy for ages", "藏食口", "让狗狗玩很久"),
              F("textured surface", "helps clean teeth while they chew", "凹凸表面", "啃咬时帮助清洁牙齿")),
            P("Travel Carrier", "宠物外出包", 199, 459, "oxford recycled_poly",
              F("mesh window", "lets your pet see out and stay cool", "网纱窗", "宠物能看外面也透气"),
              F("seatbelt strap", "keeps the carrier secure in the car", "安全带固定带", "在车里稳稳固定")),
            P("Grooming Brush", "宠物梳", 49, 129, "bamboo beech",
              F("self-cleaning button", "pushes the fur off in one click", "一键清毛按钮", "一按就能去除梳下的毛"),
              F("rounded-tip comb head", "massages without scratching the skin", "圆头梳齿", "按摩而不刮伤皮肤")),
        ],
        "features": [
            F("pet-safe finish", "contains no harmful chemicals", "宠物安全用料", "不含有害物质"),
            F("easy-clean design", "wipes or rinses clean in a minute", "易清洁设计", "一分钟就能擦洗干净"),
            F("durable build", "stands up to curious paws and teeth", "耐用做工", "经得起爪子和牙齿的考验"),
            F("size guide card", "helps you pick the right fit", "尺码指南卡", "帮你选对尺寸"),
        ],
        "tails": ["a little luxury for your four-legged friend", "a happy upgrade for everyday pet care",
                  "a pet essential that makes life easier", "a thoughtful treat for your furry friend"],
        "mc": ["stands up to busy paws", "looks neat in any corner of your home",
               "feels comfortable for pets of all sizes", "is easy to keep clean"],
        "scenes": ["Whether your pet is a sleepy senior or a bouncy puppy, it fits right into the routine.",
                   "It helps make walks, naps and mealtimes a little happier.",
                   "It is a welcome gift for new pet parents and long-time animal lovers.",
                   "Your pet will claim it as their own in no time."],
        "care": ["Clean it regularly with mild soap and water.",
                 "Check it now and then for wear and replace it when needed.",
                 "Let it dry completely before your pet uses it again."],
        "zh_tails": ["给毛孩子的小小宠爱", "轻松养宠的好物", "毛孩子的贴心礼物"],
        "zh_mc": ["经得起毛孩子折腾", "放哪个角落都好看", "大小宠物都舒服", "清洁打理很轻松"],
        "zh_scenes": ["无论是爱睡觉的老宠物还是活泼的小家伙，它都能融入日常。", "让散步、午睡和吃饭时光更开心。",
                      "送给新手铲屎官或资深爱宠人士都很合适。"],
        "zh_care": ["定期用温和的肥皂水清洗。", "请定期检查磨损情况，必要时更换。"],
    },
}

# Invented model names: "<model word> <product type>" (English) or "<model word><product type>" (Chinese).
MODEL_WORDS_EN = ["Harbor", "Meadow", "Summit", "Juniper", "Cobalt", "Ember", "Willow", "Tidal", "Aster", "Cinder",
                  "Fable", "Nimbus", "Quarry", "Ridge", "Sable", "Tundra", "Larch", "Marlow", "Orbit", "Pebble",
                  "Rowan", "Solstice", "Thistle", "Verve", "Wren", "Zephyr", "Alder", "Brook", "Canyon", "Dune",
                  "Fjord", "Grove", "Haven", "Isle", "Kestrel", "Lumen", "Mosaic", "Nova", "Opal", "Prism"]
MODEL_WORDS_ZH = ["云朵", "晨光", "松风", "青岚", "暖阳", "星河", "山野", "溪石", "月白", "竹影", "栖木", "麦穗",
                  "雾岛", "橙光", "海盐", "拾光", "林间", "初雪", "晚风", "芦苇", "青柠", "沙丘", "萤火", "琥珀"]

# ---------------------------------------------------------------------------------------------------------
# Tone banks, English
# ---------------------------------------------------------------------------------------------------------
HOOK_EN = {
    "friendly": ["Meet the {name} from {brand}, {tail}.",
                 "Say hello to the {name} by {brand}, {tail}.",
                 "Looking for {tail}? Try the {name} by {brand}."],
    "professional": ["The {name} by {brand} is {tail}.",
                     "Introducing the {name} from {brand}: {tail}.",
                     "{brand} presents the {name}, {tail}."],
    "luxury": ["Discover the {name} by {brand}, {tail}.",
               "Indulge in the {name} from {brand}, {tail}.",
               "Crafted without compromise, the {name} by {brand} is {tail}."],
    "playful": ["Guess what just landed? The {name} by {brand}, {tail}!",
                "Psst, meet the {name} from {brand}, {tail}!",
                "Say hi to the {name} by {brand}, {tail}!"],
    "minimal": ["The {name} by {brand}. {Tail}.",
                "{name}, by {brand}: {tail}."],
}
MATCOL_EN = {
    "friendly": ["Made from {material} in a lovely {color} shade, it {mc}.",
                 "We made it from {material} in {color}, and it {mc}."],
    "professional": ["Made with {material} and finished in {color}, it {mc}.",
                     "With {material} and a {color} finish, it {mc}."],
    "luxury": ["Crafted from {material} and dressed in {color}, it {mc}.",
               "Fine {material} meets a rich {color} finish, and the result {mc}."],
    "playful": ["Made from {material} in a happy shade of {color}, it {mc}.",
                "It comes in {color} {material}, so it {mc}!"],
    "minimal": ["Made from {material} in {color}, it {mc}.",
                "{Material}, in {color}. It {mc}."],
}
# Short descriptions fold material, colour and the feature list into one sentence.
LIST_EN = {
    "friendly": ["Made from {material} in {color}, it comes with {list}.",
                 "Made from {material} in {color}, it has {list}."],
    "professional": ["Made with {material} in {color}, it features {list}.",
                     "It pairs {material} and a {color} finish with {list}."],
    "luxury": ["Crafted from {material} in {color}, with {list}.",
               "Fine {color} {material}, finished with {list}."],
    "playful": ["It comes in {color} {material} with {list}!",
                "Think {material}, think {color}, plus {list}!"],
    "minimal": ["Made from {material} in {color}, with {list}.",
                "{Material} in {color}, with {list}."],
}
FEATURE_EN = {
    "friendly": ["The {f} {b}.", "Plus, the {f} {b}.", "We love how the {f} {b}."],
    "professional": ["The {f} {b}.", "Its {f} {b}.", "{A} {f} {b}."],
    "luxury": ["Its {f} {b}.", "The {f} {b}.", "Note the {f}, which {b}."],
    "playful": ["Bonus: the {f} {b}!", "The {f}? It {b}.", "And the {f} {b}."],
    "minimal": ["The {f} {b}.", "{F} {b}."],
}
PRICE_EN = {
    "friendly": ["Just {price} yuan.", "Yours for just {price} yuan."],
    "professional": ["Priced at {price} yuan.", "Available now for {price} yuan."],
    "luxury": ["Offered at {price} yuan.", "Yours for {price} yuan."],
    "playful": ["Only {price} yuan!", "{price} yuan. Score!"],
    "minimal": ["{price} yuan.", "Price: {price} yuan."],
}
CTA_EN = {
    "friendly": ["Add it to your cart today!", "Go on, treat yourself.", "Order yours today and enjoy."],
    "professional": ["Order today for fast delivery.", "Add it to your order today.",
                     "Choose {brand} for dependable quality."],
    "luxury": ["Make it yours today.", "Reserve yours and feel the difference.",
               "Treat yourself to the exceptional."],
    "playful": ["Go on, hit that button!", "Grab yours before your friends do!",
                "Let the fun begin!"],
    "minimal": ["Order now.", "Available now.", "Made to last."],
}

# ---------------------------------------------------------------------------------------------------------
# Tone banks, Chinese
# ---------------------------------------------------------------------------------------------------------
HOOK_ZH = {
    "friendly": ["认识一下{brand}的{name}，{tail}。", "嗨，这是{brand}的{name}，{tail}。",
                 "想找{tail}吗？试试{brand}的{name}。"],
    "professional": ["{brand} {name}，{tail}。", "隆重推出{brand} {name}：{tail}。", "{brand}推出的{name}，是{tail}。"],
    "luxury": ["{brand} {name}，{tail}，为你而来。", "臻选{brand} {name}，{tail}。",
               "匠心之作{brand} {name}，{tail}。"],
    "playful": ["叮咚！{brand}的{name}来啦，{tail}！", "猜猜谁到了？{brand} {name}，{tail}！",
                "注意啦，{brand}的{name}登场，{tail}！"],
    "minimal": ["{brand} {name}。{tail}。", "{name}，{brand}出品。{tail}。"],
}
MATCOL_ZH = {
    "friendly": ["采用{material}，{color}配色，{mc}。", "选用{material}，搭配温柔的{color}，{mc}。"],
    "professional": ["产品采用{material}，{color}外观，{mc}。", "{material}材质，{color}配色，{mc}。"],
    "luxury": ["甄选{material}，以{color}呈现，{mc}。", "{material}与{color}相遇，{mc}。"],
    "playful": ["{material}做的，{color}超好看，{mc}！", "用的是{material}，颜色是{color}，{mc}～"],
    "minimal": ["{material}，{color}，{mc}。", "{material}。{color}。{mc}。"],
}
# Short descriptions fold material, colour and the feature list into one sentence.
LIST_ZH = {
    "friendly": ["采用{material}，{color}配色，还有{list}。", "{color}的{material}款，自带{list}。"],
    "professional": ["采用{material}，{color}外观，配备{list}。", "{material}材质，{color}配色，具备{list}。"],
    "luxury": ["甄选{material}，{color}呈现，更有{list}。", "{material}与{color}相遇，辅以{list}。"],
    "playful": ["{material}加{color}，再配上{list}！", "{color}的{material}，还有{list}！"],
    "minimal": ["{material}，{color}，{list}。", "{material}。{color}。{list}。"],
}
FEATURE_ZH = {
    "friendly": ["{f}，{b}。", "贴心的{f}，{b}。", "还有{f}，{b}。"],
    "professional": ["{f}，{b}。", "配备{f}，{b}。"],
    "luxury": ["精致的{f}，{b}。", "{f}，{b}。"],
    "playful": ["还有{f}，{b}！", "{f}？{b}！"],
    "minimal": ["{f}，{b}。", "{f}：{b}。"],
}
PRICE_ZH = {
    "friendly": ["只要{price}元，超值！", "售价{price}元，性价比满满。"],
    "professional": ["售价{price}元，物有所值。", "现售{price}元。"],
    "luxury": ["{price}元，为日常添一份精致。", "定价{price}元。"],
    "playful": ["只要{price}元！", "才{price}元，钱包也开心！"],
    "minimal": ["{price}元。", "售价：{price}元。"],
}
CTA_ZH = {
    "friendly": ["快把它带回家吧！", "好好犒劳自己吧！", "喜欢就加入购物车吧！"],
    "professional": ["欢迎立即下单。", "现在下单，快速发货。", "立即选购。"],
    "luxury": ["即刻拥有非凡品质。", "把这份精致带回家。", "犒赏自己，值得最好的。"],
    "playful": ["还等什么，快冲！", "手慢无，赶紧下单！", "加入购物车，快乐马上到！"],
    "minimal": ["即刻下单。", "现已上架。", "简单，耐用。"],
}


# ---------------------------------------------------------------------------------------------------------
# Assembly
# ---------------------------------------------------------------------------------------------------------
def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def article(phrase: str) -> str:
    first = phrase.split()[0].lower()
    if first[0].isdigit():
        return "an" if first.startswith(("8", "11", "18")) else "a"
    if first.startswith(("one", "uni", "use", "eu")):
        return "a"
    return "an" if first[0] in "aeiou" else "a"


def join_en(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def join_zh(items: list[str]) -> str:
    return items[0] if len(items) == 1 else "、".join(items[:-1]) + "和" + items[-1]


def size_of(text: str, lang: str) -> int:
    """Words for English, characters for Chinese."""
    return len(text.split()) if lang == "en" else len(text)


def describe_en(rng: random.Random, cat: dict, item: dict, tone: str, length: str) -> str:
    slots = {"name": item["name"], "brand": item["brand"], "material": item["material"],
             "Material": cap(item["material"]), "color": item["color"], "Color": cap(item["color"]),
             "price": item["price"]}
    tail = rng.choice(cat["tails"])
    parts = [rng.choice(HOOK_EN[tone]).format(tail=tail, Tail=cap(tail), **slots)]
    if length == "long":
        parts.append(rng.choice(cat["scenes"]))
    if length == "short":
        listed = join_en([f"{article(f['en'])} {f['en']}" for f in item["feats"]])
        parts.append(rng.choice(LIST_EN[tone]).format(list=listed, **slots))
    else:
        parts.append(rng.choice(MATCOL_EN[tone]).format(mc=rng.choice(cat["mc"]), **slots))
        # each wrapper at most once per description; a plain sentence once they run out
        wrappers = rng.sample(FEATURE_EN[tone], len(FEATURE_EN[tone]))
        for i, feat in enumerate(item["feats"]):
            wrap = wrappers[i] if i < len(wrappers) else "The {f} {b}."
            parts.append(wrap.format(f=feat["en"], F=cap(feat["en"]), A=cap(article(feat["en"])), b=feat["en_b"]))
    if length == "long" and len(item["feats"]) < 4:
        parts.append(rng.choice(cat["care"]))
    if length != "short":
        parts.append(rng.choice(PRICE_EN[tone]).format(**slots))
    parts.append(rng.choice(CTA_EN[tone]).format(**slots))
    return " ".join(parts)


def describe_zh(rng: random.Random, cat: dict, item: dict, tone: str, length: str) -> str:
    slots = {"name": item["name"], "brand": item["brand"], "material": item["material"],
             "color": item["color"], "price": item["price"]}
    parts = [rng.choice(HOOK_ZH[tone]).format(tail=rng.choice(cat["zh_tails"]), **slots)]
    if length == "long":
        parts.append(rng.choice(cat["zh_scenes"]))
    if length == "short":
        listed = join_zh([f["zh"] for f in item["feats"]])
        parts.append(rng.choice(LIST_ZH[tone]).format(list=listed, **slots))
    else:
        parts.append(rng.choice(MATCOL_ZH[tone]).format(mc=rng.choice(cat["zh_mc"]), **slots))
        wrappers = rng.sample(FEATURE_ZH[tone], len(FEATURE_ZH[tone]))
        for i, feat in enumerate(item["feats"]):
            wrap = wrappers[i] if i < len(wrappers) else "{f}，{b}。"
            parts.append(wrap.format(f=feat["zh"], b=feat["zh_b"]))
    if length == "long" and len(item["feats"]) < 4:
        parts.append(rng.choice(cat["zh_care"]))
    if length != "short":
        parts.append(rng.choice(PRICE_ZH[tone]).format(**slots))
    parts.append(rng.choice(CTA_ZH[tone]))
    return "".join(parts)


def describe(rng: random.Random, cat: dict, item: dict, tone: str, length: str, lang: str) -> tuple[str, int]:
    """Sample phrasings until the description lands in the target size range.
    Returns the text and how far outside the range it is (0 = inside; else the closest one found)."""
    lo, hi = LENGTH_RANGE[lang][length]
    build = describe_en if lang == "en" else describe_zh
    best, best_gap = "", 10**9
    for _ in range(40):
        text = build(rng, cat, item, tone, length)
        size = size_of(text, lang)
        gap = max(lo - size, size - hi, 0)
        if gap < best_gap:
            best, best_gap = text, gap
        if gap == 0:
            break
    return best, best_gap


def cycled(values: list, n: int, rng: random.Random) -> list:
    """n values made of back-to-back shuffled copies of `values`: balanced overall and in every slice."""
    out: list = []
    while len(out) < n:
        out += rng.sample(values, len(values))
    return out[:n]


def price_in(rng: random.Random, lo: int, hi: int) -> str:
    value = rng.randrange(lo // 10, hi // 10 + 1) * 10 + 9  # prices end in 9, as shops like them
    cents = ".90" if rng.random() < 0.15 else ".00"
    return f"{min(max(value, lo), hi + 9)}{cents}"


def make_rows(rng: random.Random, per_category: int, sku_start: int, used_names: set[str]) -> list[dict]:
    combos = [(tone, length) for tone in TONES for length in LENGTHS]
    total = per_category * len(CATEGORIES)
    all_tone_length = cycled(combos, total, rng)
    all_langs = cycled(["en", "en", "en", "en", "zh"], total, rng)
    rows = []
    for c, (cat_name, cat) in enumerate(CATEGORIES.items()):
        part = slice(c * per_category, (c + 1) * per_category)
        tone_length, langs = all_tone_length[part], all_langs[part]
        products = cycled(cat["products"], per_category, rng)
        for i in range(per_category):
            tone, length = tone_length[i]
            lang, product = langs[i], products[i]
            name = _fresh_name(rng, product, lang, used_names)
            brand = rng.choice(cat["brands"])
            li = 0 if lang == "en" else 1
            material, color = MATERIALS[rng.choice(product["materials"])][li], rng.choice(cat["colors"])[li]
            price = price_in(rng, product["lo"], product["hi"])
            best = None
            for _ in range(10):  # a different feature draw if no phrasing fits the length class
                n_feats = rng.randint(*N_FEATURES[length])
                n_specific = rng.randint(1, min(2, n_feats))
                feats = rng.sample(product["features"], n_specific)
                feats += rng.sample(cat["features"], n_feats - n_specific)
                rng.shuffle(feats)
                item = {"name": name, "brand": brand, "material": material, "color": color, "price": price,
                        "feats": feats}
                description, gap = describe(rng, cat, item, tone, length, lang)
                if best is None or gap < best[0]:
                    best = (gap, item, description)
                if gap == 0:
                    break
            _, item, description = best
            rows.append({
                "sku": f"{cat['code']}-{sku_start + i:04d}",
                "category": cat_name,
                "name": name,
                "brand": item["brand"],
                "material": item["material"],
                "color": item["color"],
                "features": ";".join(f[lang] for f in item["feats"]),
                "price": item["price"],
                "tone": tone,
                "length": length,
                "lang": lang,
                "description": description,
            })
    rng.shuffle(rows)
    return rows


def _fresh_name(rng: random.Random, product: dict, lang: str, used: set[str]) -> str:
    words = MODEL_WORDS_EN if lang == "en" else MODEL_WORDS_ZH
    for word in rng.sample(words, len(words)):
        name = f"{word} {product['en']}" if lang == "en" else f"{word}{product['zh']}"
        if name not in used:
            used.add(name)
            return name
    raise RuntimeError(f"ran out of model names for {product['en']!r}")


def write_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def generate(seed: int = SEED) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    used_names: set[str] = set()
    train = make_rows(rng, N_TRAIN_PER_CATEGORY, 1001, used_names)
    test = make_rows(rng, N_TEST_PER_CATEGORY, 5001, used_names)
    check(train, test)
    return train, test


def check(train: list[dict], test: list[dict]) -> None:
    """Invariants the demo relies on; raise if any is broken."""
    for rows in (train, test):
        assert len({r["description"] for r in rows}) == len(rows), "duplicate descriptions"
        assert len({r["sku"] for r in rows}) == len(rows), "duplicate SKUs"
        for r in rows:
            assert set(r) == set(COLUMNS)
            assert 2 <= len(r["features"].split(";")) <= 4, r["sku"]
            assert r["name"] in r["description"] and r["brand"] in r["description"], r["sku"]
            float(r["price"])
    assert not {r["name"] for r in train} & {r["name"] for r in test}, "product name shared by train and test"
    assert not {r["sku"] for r in train} & {r["sku"] for r in test}, "SKU shared by train and test"
    assert not {r["description"] for r in train} & {r["description"] for r in test}, "description in both splits"
    as_tuples = {tuple(r[c] for c in COLUMNS) for r in train}
    assert not any(tuple(r[c] for c in COLUMNS) in as_tuples for r in test), "row duplicated across splits"


# ---------------------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------------------
def emit(line: str = "") -> None:
    print(line)  # noqa: T201 - this script reports to the terminal


def report(train: list[dict], test: list[dict], seconds: float) -> None:
    emit(f"generated in {seconds:.3f}s (seed {SEED})")
    emit(f"rows: train pool {len(train)}, test {len(test)}")
    for column in ("category", "lang", "tone", "length"):
        tr, te = Counter(r[column] for r in train), Counter(r[column] for r in test)
        emit(f"\nper {column} (train / test):")
        for key in sorted(tr):
            emit(f"  {key:<26}{tr[key]:>5} /{te.get(key, 0):>3}")
    n_feats = Counter(len(r["features"].split(";")) for r in train + test)
    emit("\nfeatures per row (train+test): " + ", ".join(f"{k}: {n_feats[k]}" for k in sorted(n_feats)))
    emit("\ndescription size per length class (en: words, zh: characters) over train+test:")
    rows = train + test
    for lang in ("en", "zh"):
        for length in LENGTHS:
            sizes = [size_of(r["description"], lang) for r in rows if r["lang"] == lang and r["length"] == length]
            lo, hi = LENGTH_RANGE[lang][length]
            outside = sum(not lo <= s <= hi for s in sizes)
            emit(f"  {lang} {length:<7} n={len(sizes):<4} min={min(sizes):<4} mean={statistics.mean(sizes):6.1f} "
                 f"max={max(sizes):<4} target={lo}-{hi} outside={outside}")
    emit(f"\ndistinct descriptions: train {len({r['description'] for r in train})}/{len(train)}, "
         f"test {len({r['description'] for r in test})}/{len(test)}")
    shared = {r["description"] for r in train} & {r["description"] for r in test}
    emit(f"descriptions shared by train and test: {len(shared)}; product names shared: "
         f"{len({r['name'] for r in train} & {r['name'] for r in test})}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    start = time.perf_counter()
    train, test = generate()
    seconds = time.perf_counter() - start
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(train, args.out_dir / "products.csv")
    write_csv(test, args.out_dir / "products_test.csv")
    report(train, test, seconds)
    emit(f"\nwrote {args.out_dir / 'products.csv'} and {args.out_dir / 'products_test.csv'}")


if __name__ == "__main__":
    main()
