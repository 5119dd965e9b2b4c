"""Semantic category similarity (paper 002 §3.4).

"Fashion categories are mapped to semantic groups (e.g. tops, bottoms, outerwear) ... 1.0 for
identical categories, 0.8 for different items within the same semantic group, 0.1–0.4 for
inter-group combinations based on a predefined similarity matrix."

The paper does not publish its groups or matrix; ours are below. A category is mapped to a
semantic group by, in order: (1) an exact table of the fine categories of the demo catalog,
Fashion Product Images (articleType) and H&M (product_type_name); (2) the item's coarse group
(subCategory, H&M garment group or product group, demo group); (3) keywords in either name;
(4) ``"Other"``. The example of §3.4 holds: Cardigan–Sweater (both Topwear: 0.8) scores above
Cardigan–Skirt (Topwear–Bottomwear: 0.3).

Between groups (:data:`GROUP_SIMILARITY`, symmetric, every value in [0.1, 0.4]): garments worn
in the same place or layered score highest (Topwear–Outerwear 0.4, Topwear–Dress 0.35,
Dress–Outerwear 0.3, Topwear–Bottomwear 0.3, Bottomwear–Dress 0.3), things that complete an
outfit next (Footwear/Bags/Headwear/Accessories among themselves 0.25–0.3, with garments
0.15–0.2), innerwear/swimwear/beauty lowest; any pair not listed is 0.1.
"""

from __future__ import annotations

from collections.abc import Mapping

SAME_CATEGORY = 1.0
SAME_GROUP = 0.8
DEFAULT_BETWEEN = 0.1

GROUPS: tuple[str, ...] = ("Topwear", "Bottomwear", "Dress", "Outerwear", "Footwear", "Bags",
                           "Headwear", "Accessories", "Innerwear", "Swimwear", "Beauty", "Other")

_PAIRS: dict[tuple[str, str], float] = {
    ("Topwear", "Outerwear"): 0.4,
    ("Topwear", "Dress"): 0.35,
    ("Topwear", "Bottomwear"): 0.3,
    ("Bottomwear", "Dress"): 0.3,
    ("Dress", "Outerwear"): 0.3,
    ("Bottomwear", "Outerwear"): 0.25,
    ("Footwear", "Bags"): 0.3,
    ("Footwear", "Accessories"): 0.25,
    ("Bags", "Accessories"): 0.3,
    ("Headwear", "Accessories"): 0.3,
    ("Headwear", "Bags"): 0.25,
    ("Headwear", "Footwear"): 0.2,
    ("Footwear", "Bottomwear"): 0.2,
    ("Footwear", "Dress"): 0.2,
    ("Footwear", "Topwear"): 0.15,
    ("Footwear", "Outerwear"): 0.15,
    ("Bags", "Dress"): 0.2,
    ("Bags", "Topwear"): 0.15,
    ("Bags", "Outerwear"): 0.15,
    ("Bags", "Bottomwear"): 0.15,
    ("Headwear", "Outerwear"): 0.2,
    ("Headwear", "Topwear"): 0.15,
    ("Accessories", "Dress"): 0.2,
    ("Accessories", "Topwear"): 0.15,
    ("Accessories", "Outerwear"): 0.15,
    ("Accessories", "Bottomwear"): 0.15,
    ("Innerwear", "Swimwear"): 0.3,
    ("Innerwear", "Topwear"): 0.2,
    ("Innerwear", "Bottomwear"): 0.2,
    ("Innerwear", "Dress"): 0.15,
    ("Swimwear", "Topwear"): 0.15,
    ("Swimwear", "Bottomwear"): 0.15,
    ("Swimwear", "Dress"): 0.15,
    ("Swimwear", "Headwear"): 0.15,
    ("Beauty", "Accessories"): 0.2,
    ("Beauty", "Bags"): 0.15,
}

#: The predefined symmetric inter-group matrix of §3.4: ``GROUP_SIMILARITY[a][b]``.
GROUP_SIMILARITY: dict[str, dict[str, float]] = {
    a: {b: (SAME_GROUP if a == b else _PAIRS.get((a, b), _PAIRS.get((b, a), DEFAULT_BETWEEN)))
        for b in GROUPS}
    for a in GROUPS
}

_EXACT: dict[str, str] = {}


def _add(group: str, *names: str) -> None:
    for name in names:
        _EXACT[name.lower()] = group


# demo catalog, fashion_products articleType, H&M product_type_name
_add("Topwear", "Tshirts", "T-shirt", "Shirts", "Shirt", "Tops", "Top", "Kurtas", "Kurtis",
     "Tunics", "Sweatshirts", "Sweaters", "Sweater", "Cardigan", "Hoodie", "Blouse",
     "Vest top", "Polo shirt", "Dupatta", "Suspenders", "Shrug", "Lehenga Choli", "Bodysuit",
     "Lounge Tshirts")
_add("Bottomwear", "Trousers", "Jeans", "Skirts", "Skirt", "Shorts", "Track Pants",
     "Leggings", "Capris", "Jeggings", "Patiala", "Salwar", "Churidar", "Tracksuits",
     "Leggings/Tights", "Salwar and Dupatta", "Lounge Pants", "Lounge Shorts", "Dungarees",
     "Outdoor trousers", "Pyjama bottom", "Sarong")
_add("Dress", "Dresses", "Dress", "Jumpsuit", "Jumpsuit/Playsuit", "Sarees", "Rompers",
     "Kurta Sets", "Garment Set", "Clothing Set", "Nightdress", "Night gown", "Costumes",
     "Underdress")
_add("Outerwear", "Jackets", "Jacket", "Blazers", "Blazer", "Coat", "Rain Jacket",
     "Waistcoat", "Nehru Jackets", "Outdoor Waistcoat", "Tailored Waistcoat", "Outdoor overall")
_add("Footwear", "Shoes", "Sneakers", "Casual Shoes", "Sports Shoes", "Formal Shoes", "Heels",
     "Flats", "Flip Flops", "Sandals", "Sports Sandals", "Boots", "Heeled sandals",
     "Ballerinas", "Flat shoe", "Flat shoes", "Wedge", "Pumps", "Other shoe", "Slippers",
     "Flip flop", "Bootie", "Booties")
_add("Bags", "Bags", "Bag", "Handbags", "Backpacks", "Backpack", "Clutches", "Duffel Bag",
     "Laptop Bag", "Messenger Bag", "Mobile Pouch", "Waist Pouch", "Rucksacks", "Trolley Bag",
     "Tablet Sleeve", "Cross-body bag", "Tote bag", "Shoulder bag", "Weekend/Gym bag",
     "Wallets", "Wallet")
_add("Headwear", "Caps", "Cap", "Hats", "Hat", "Cap/peaked", "Hat/beanie", "Hat/brim",
     "Beanie", "Felt hat", "Straw hat", "Headband")
_add("Accessories", "Watches", "Watch", "Belts", "Belt", "Sunglasses", "Eyeglasses", "Ties",
     "Tie", "Scarves", "Scarf", "Stoles", "Mufflers", "Gloves", "Cufflinks", "Earrings",
     "Earring", "Pendant", "Necklace and Chains", "Necklace", "Ring", "Bangle", "Bracelet",
     "Jewellery Set", "Umbrellas", "Umbrella", "Hair/alice band", "Hair string", "Hair clip",
     "Hair ties", "Other accessories", "Socks", "Wristbands", "Ties and Cufflinks",
     "Shoe Accessories", "Key chain", "Braces", "Accessory Gift Set", "Travel Accessory")
_add("Innerwear", "Briefs", "Bra", "Innerwear Vests", "Trunk", "Boxers", "Camisoles",
     "Shapewear", "Underwear bottom", "Underwear Tights", "Underwear body", "Stockings",
     "Tights", "Night suits", "Pyjama set", "Baby Dolls", "Bath Robe", "Robe",
     "Kids Underwear top", "Long John", "Pyjama jumpsuit/playsuit", "Underwear set")
_add("Swimwear", "Swimwear", "Bikini top", "Swimwear bottom", "Swimsuit", "Swimwear set")
_add("Beauty", "Perfume and Body Mist", "Deodorant", "Nail Polish", "Lipstick", "Lip Gloss",
     "Kajal and Eyeliner", "Foundation and Primer", "Highlighter and Blush", "Compact",
     "Lip Liner", "Face Moisturisers", "Eyeshadow", "Mascara", "Concealer", "Fragrance Gift Set",
     "Face Wash and Cleanser", "Sunscreen", "Hair Colour", "Lip Care", "Lip Plumper",
     "Fine cosmetics")

#: coarse groups of the sources (fashion_products subCategory/masterCategory, H&M garment and
#: product groups, demo groups) → semantic group.
_COARSE: dict[str, str] = {k.lower(): v for k, v in {
    "Topwear": "Topwear", "Bottomwear": "Bottomwear", "Dress": "Dress", "Outerwear": "Outerwear",
    "Footwear": "Footwear", "Shoes": "Footwear", "Sandal": "Footwear", "Flip Flops": "Footwear",
    "Bags": "Bags", "Wallets": "Bags", "Headwear": "Headwear", "Accessories": "Accessories",
    "Watches": "Accessories", "Jewellery": "Accessories", "Eyewear": "Accessories",
    "Belts": "Accessories", "Ties": "Accessories", "Scarves": "Accessories",
    "Cufflinks": "Accessories", "Stoles": "Accessories", "Mufflers": "Accessories",
    "Gloves": "Accessories", "Socks": "Accessories", "Innerwear": "Innerwear",
    "Loungewear and Nightwear": "Innerwear", "Saree": "Dress", "Apparel Set": "Dress",
    "Fragrance": "Beauty", "Lips": "Beauty", "Nails": "Beauty", "Makeup": "Beauty",
    "Skin Care": "Beauty", "Skin": "Beauty", "Eyes": "Beauty", "Hair": "Beauty",
    "Bath and Body": "Beauty", "Personal Care": "Beauty", "Perfumes": "Beauty",
    "Jersey Fancy": "Topwear", "Jersey Basic": "Topwear", "Blouses": "Topwear",
    "Knitwear": "Topwear", "Shirts": "Topwear", "Trousers": "Bottomwear",
    "Trousers Denim": "Bottomwear", "Shorts": "Bottomwear", "Skirts": "Bottomwear",
    "Dresses Ladies": "Dress", "Dresses/Skirts girls": "Dress", "Dressed": "Outerwear",
    "Outdoor": "Outerwear", "Under-, Nightwear": "Innerwear", "Socks and Tights": "Innerwear",
    "Swimwear": "Swimwear", "Garment Upper body": "Topwear", "Garment Lower body": "Bottomwear",
    "Garment Full body": "Dress", "Underwear": "Innerwear", "Nightwear": "Innerwear",
    "Socks & Tights": "Innerwear", "Cosmetic": "Beauty", "Apparel": "Topwear",
}.items()}

_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("jacket", "Outerwear"), ("coat", "Outerwear"), ("blazer", "Outerwear"),
    ("dress", "Dress"), ("shoe", "Footwear"), ("sandal", "Footwear"), ("boot", "Footwear"),
    ("sneaker", "Footwear"), ("bag", "Bags"), ("hat", "Headwear"), ("cap", "Headwear"),
    ("swim", "Swimwear"), ("bikini", "Swimwear"), ("underwear", "Innerwear"),
    ("pyjama", "Innerwear"), ("trouser", "Bottomwear"), ("jean", "Bottomwear"),
    ("skirt", "Bottomwear"), ("short", "Bottomwear"), ("shirt", "Topwear"),
    ("top", "Topwear"), ("sweat", "Topwear"),
)


def semantic_group(category: str, group: str = "") -> str:
    """The semantic group of a fine ``category`` (with the item's coarse ``group`` as a hint)."""
    key = category.strip().lower()
    if key in _EXACT:
        return _EXACT[key]
    coarse = group.strip().lower()
    if coarse in _COARSE:
        return _COARSE[coarse]
    for text in (key, coarse):
        for word, semantic in _KEYWORDS:
            if word in text:
                return semantic
    return "Other"


def group_similarity(a: str, b: str) -> float:
    """Entry of the §3.4 matrix for two semantic groups (unknown groups → 0.1, or 0.8 if equal)."""
    if a == b:
        return SAME_GROUP
    return GROUP_SIMILARITY.get(a, {}).get(b, DEFAULT_BETWEEN)


def category_similarity(cat_a: str, cat_b: str, group_a: str = "", group_b: str = "",
                        matrix: Mapping[str, Mapping[str, float]] | None = None) -> float:
    """§3.4: 1.0 same category, 0.8 same semantic group, else the inter-group matrix entry."""
    if cat_a.strip().lower() == cat_b.strip().lower():
        return SAME_CATEGORY
    ga, gb = semantic_group(cat_a, group_a), semantic_group(cat_b, group_b)
    if matrix is not None:
        return SAME_GROUP if ga == gb else float(matrix.get(ga, {}).get(gb, DEFAULT_BETWEEN))
    return group_similarity(ga, gb)
