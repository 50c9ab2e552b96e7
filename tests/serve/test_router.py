"""`model: auto` routing by TF-IDF character n-grams and nearest centroid (English and Chinese prompts)."""

from __future__ import annotations

from r1tune.serve.router import DomainRouter

SHOP = ["Write a description for the blue ceramic mug", "Describe the red wool scarf for our store",
        "Product copy for a brass desk lamp", "Write marketing text for a leather bag", "这款保温杯的商品描述"]
CLINIC = ["我头疼发烧三天了，应该吃什么药？", "孩子咳嗽有痰，需要去医院吗？", "血压高应该注意什么饮食？",
          "What dose of ibuprofen is safe for a headache?", "Is a fever of 39 degrees dangerous?"]


def test_routes_unseen_prompts_to_the_right_domain():
    router = DomainRouter({"shop": SHOP, "clinic": CLINIC})
    assert router.route("Write a description for a green glass vase").adapter == "shop"
    assert router.route("我发烧咳嗽，要吃什么药").adapter == "clinic"
    assert router.route("headache and fever for two days, what dose?").adapter == "clinic"
    route = router.route("写一段陶瓷杯的商品描述")
    assert route.adapter == "shop" and route.scores["shop"] > route.scores["clinic"]


def test_unrelated_prompt_falls_back_below_the_threshold():
    router = DomainRouter({"shop": SHOP, "clinic": CLINIC}, min_similarity=0.3, fallback=None)
    route = router.route("zzzz qqqq")
    assert route.adapter is None and set(route.scores) == {"shop", "clinic"}


def test_adapters_without_prompts_are_not_routable():
    router = DomainRouter({"shop": SHOP, "empty": []})
    assert router.names == ["shop"]
    assert not DomainRouter({}).available
