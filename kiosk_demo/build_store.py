"""Build the kiosk's embedded demo store from the real data in ``../shared/data``.

Writes small derived files into ``kiosk_demo/store/`` (committed; see its README for the
attribution and licences):

- ``catalog.jsonl``: the 167 products of the groceries-dated store (item id =
  ``shelfwise.model.encoding.item_id_from_name(itemDescription)``, as the trained bundle uses),
  plus the real packaged products of Open Food Facts with their real EAN-13 codes. A packaged
  groceries product takes the barcode, brand and name of a matching Open Food Facts product;
  loose goods (produce, bakery, meat counter) get GS1 in-store codes (prefix 20) and other
  store-labelled goods prefix 21. Prices are illustrative.
- ``categories.json``: ``{item_id: category}`` (training reads it for category popularity).
- ``history.csv.gz``: every member basket line ``member,date,item_id`` with the original
  2014-2015 dates; the kiosk shifts them by whole weeks when it seeds a store (see
  ``kiosk_demo.seed``).
- ``members.csv``: member number, loyalty card code (EAN-13 ``299`` + 9-digit member number
  + check digit), basket days, last basket date.

Example:
    python -m shelfwise.kiosk_demo.build_store --data ../shared/data
"""

from __future__ import annotations

import argparse
import collections
import csv
import gzip
import hashlib
import html
import io
import json
import re
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

from stdnum import ean

from shelfwise.model.encoding import item_id_from_name

from .cards import card_code, ean13

STORE_DIR = Path(__file__).parent / "store"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# category, kind: "L" loose (in-store code, prefix 20), "S" store-labelled (prefix 21), or a
# regular expression that picks the Open Food Facts product whose real barcode it carries.
PRODUCTS: dict[str, tuple[str, str]] = {
    "Instant food products": ("pantry", r"\bpreparato\b|zuppa di cereali"),
    "UHT-milk": ("dairy", r"\bUHT\b"),
    "abrasive cleaner": ("household", "S"),
    "artif. sweetener": ("pantry", "S"),
    "baby cosmetics": ("personal care", "S"),
    "bags": ("household", "S"),
    "baking powder": ("pantry", r"lievito"),
    "bathroom cleaner": ("household", "S"),
    "beef": ("meat", "L"),
    "berries": ("produce", "L"),
    "beverages": ("drinks", r"^t[eè] |\btè\b|bevanda"),
    "bottled beer": ("alcohol", r"\bbirra\b"),
    "bottled water": ("drinks", r"\bacqua (minerale|amata)"),
    "brandy": ("alcohol", "S"),
    "brown bread": ("bakery", "L"),
    "butter": ("dairy", r"^burro"),
    "butter milk": ("dairy", r"latticello|kefir"),
    "cake bar": ("snacks", r"merendin|pan e cioc"),
    "candles": ("household", "S"),
    "candy": ("snacks", r"caramell|gommos|confett"),
    "canned beer": ("alcohol", r"ceres|dreher"),
    "canned fish": ("pantry", r"\btonno\b|sgombr|acciugh|sardin"),
    "canned fruit": ("pantry", r"sciroppo|pesche"),
    "canned vegetables": ("pantry", r"\bfagiol|\bceci\b|\bpiselli\b|lenticch"),
    "cat food": ("pets", "S"),
    "cereals": ("pantry", r"corn flakes|muesli|cereali croccanti|fiocchi"),
    "chewing gum": ("snacks", "S"),
    "chicken": ("meat", "L"),
    "chocolate": ("snacks", r"^cioccolato|tavoletta"),
    "chocolate marshmallow": ("snacks", "S"),
    "citrus fruit": ("produce", "L"),
    "cleaner": ("household", "S"),
    "cling film/bags": ("household", "S"),
    "cocoa drinks": ("drinks", r"cacao solubile|bevanda .*cioccolato"),
    "coffee": ("pantry", r"\bcaff[eè]\b macinato|espresso|caffe$|^caffe"),
    "condensed milk": ("dairy", "S"),
    "cooking chocolate": ("pantry", r"fondente"),
    "cookware": ("household", "S"),
    "cream": ("dairy", r"^panna"),
    "cream cheese ": ("dairy", r"philadelphia|spalmabile"),
    "curd": ("dairy", r"\bricotta\b"),
    "curd cheese": ("dairy", r"\bquark\b|fiocchi di latte|primo sale"),
    "decalcifier": ("household", "S"),
    "dental care": ("personal care", "S"),
    "dessert": ("dairy", r"budino|pudding|dessert|panna cotta"),
    "detergent": ("household", "S"),
    "dish cleaner": ("household", "S"),
    "dishes": ("household", "S"),
    "dog food": ("pets", "S"),
    "domestic eggs": ("dairy", r"^uova|\buova\b"),
    "female sanitary products": ("personal care", "S"),
    "finished products": ("deli", r"lasagn|tortellin|ravioli"),
    "fish": ("fish", "L"),
    "flour": ("pantry", r"^farina"),
    "flower (seeds)": ("garden", "S"),
    "flower soil/fertilizer": ("garden", "S"),
    "frankfurter": ("meat", r"w[uü]rstel"),
    "frozen chicken": ("frozen", "S"),
    "frozen dessert": ("frozen", r"coppa del nonno|\bgelato\b"),
    "frozen fish": ("frozen", r"bastoncini|surgelat.*pesce"),
    "frozen fruits": ("frozen", "S"),
    "frozen meals": ("frozen", r"minestrone .*surgelat"),
    "frozen potato products": ("frozen", r"patatine|crocchett"),
    "frozen vegetables": ("frozen", r"spinaci .*surgelat|verdure .*surgelat"),
    "fruit/vegetable juice": ("drinks", r"^succo|\bsucco\b"),
    "grapes": ("produce", "L"),
    "hair spray": ("personal care", "S"),
    "ham": ("deli", r"prosciutto cotto"),
    "hamburger meat": ("meat", r"^macinato|polpa .*bovino"),
    "hard cheese": ("dairy", r"parmigiano|grana padano|pecorino"),
    "herbs": ("produce", "L"),
    "honey": ("pantry", r"^miele"),
    "house keeping products": ("household", "S"),
    "hygiene articles": ("personal care", "S"),
    "ice cream": ("frozen", r"\bgelato\b|\bcono\b"),
    "instant coffee": ("pantry", r"solubile|nescaf"),
    "jam": ("pantry", r"marmellata|confettura"),
    "ketchup": ("pantry", "S"),
    "kitchen towels": ("household", "S"),
    "kitchen utensil": ("household", "S"),
    "light bulbs": ("household", "S"),
    "liqueur": ("alcohol", r"liquore|limoncello|amaro"),
    "liquor": ("alcohol", r"grappa|vodka|\bgin\b"),
    "liquor (appetizer)": ("alcohol", r"aperitiv|spritz"),
    "liver loaf": ("deli", "S"),
    "long life bakery product": ("bakery", r"fette biscottate|crackers?|grissin"),
    "make up remover": ("personal care", "S"),
    "male cosmetics": ("personal care", "S"),
    "margarine": ("dairy", r"margarin|flora"),
    "mayonnaise": ("pantry", r"maionese"),
    "meat": ("meat", "L"),
    "meat spreads": ("deli", r"pat[eé]\b|spalmabile di carne"),
    "misc. beverages": ("drinks", r"bibita|aranciata|chinotto"),
    "mustard": ("pantry", r"senape|mostarda"),
    "napkins": ("household", "S"),
    "newspapers": ("other", "S"),
    "nut snack": ("snacks", r"arachid|pistacch|anacard"),
    "nuts/prunes": ("snacks", r"^mandorl|^noci\b|prugn|^nocciol"),
    "oil": ("pantry", r"^olio"),
    "onions": ("produce", "L"),
    "organic products": ("pantry", r"\bbio(logic[oa])?\b"),
    "organic sausage": ("meat", "L"),
    "other vegetables": ("produce", "L"),
    "packaged fruit/vegetables": ("produce", r"insalat|rucola|pomodorin|datterin"),
    "pasta": ("pantry", r"spaghetti|penne|fusilli|linguine|rigatoni"),
    "pastry": ("bakery", "L"),
    "pet care": ("pets", "S"),
    "photo/film": ("other", "S"),
    "pickled vegetables": ("pantry", r"sottaceti|^capperi|^olive|carciofin"),
    "pip fruit": ("produce", "L"),
    "popcorn": ("snacks", r"pop ?corn"),
    "pork": ("meat", "L"),
    "pot plants": ("garden", "S"),
    "potato products": ("pantry", "S"),
    "preservation products": ("household", "S"),
    "processed cheese": ("dairy", r"sottilet|formaggini|fette di formaggio"),
    "prosecco": ("alcohol", r"prosecco"),
    "pudding powder": ("pantry", r"preparato per budino|budino in polvere"),
    "ready soups": ("pantry", r"vellutata|zuppa pronta|minestra"),
    "red/blush wine": ("alcohol", r"vino rosso|chianti|barbera|montepulciano|salvagno"),
    "rice": ("pantry", r"^riso"),
    "roll products ": ("bakery", "L"),
    "rolls/buns": ("bakery", "L"),
    "root vegetables": ("produce", "L"),
    "rubbing alcohol": ("household", "S"),
    "rum": ("alcohol", "S"),
    "salad dressing": ("pantry", r"^condimento"),
    "salt": ("pantry", r"^sale\b|cuor di mare"),
    "salty snack": ("snacks", r"patatine|chips|salatin|tarall"),
    "sauces": ("pantry", r"^sugo|^pesto|^passata|^ragù"),
    "sausage": ("meat", "L"),
    "seasonal products": ("other", "S"),
    "semi-finished bread": ("bakery", r"piadin|pane .*precott|pan carr"),
    "shopping bags": ("other", "S"),
    "skin care": ("personal care", r"crema .*(viso|corpo|mani)|bagno doccia"),
    "sliced cheese": ("dairy", r"formaggio .*fette|sottilett"),
    "snack products": ("snacks", r"barrett|snack"),
    "soap": ("personal care", r"sapone"),
    "soda": ("drinks", r"cola\b|^aranciata|^fanta"),
    "soft cheese": ("dairy", r"stracchino|mozzarella|crescenza|gorgonzola"),
    "softener": ("household", "S"),
    "soups": ("pantry", r"^zuppa"),
    "sparkling wine": ("alcohol", r"spumante|franciacorta"),
    "specialty bar": ("snacks", r"barretta"),
    "specialty cheese": ("dairy", r"burrata|stracciatella|taleggio|fontina"),
    "specialty chocolate": ("snacks", r"pralin|cioccolatin|gianduj"),
    "specialty fat": ("pantry", r"strutto|olio di semi"),
    "specialty vegetables": ("produce", "L"),
    "spices": ("pantry", r"^pepe|^origano|^spezie|^curcuma|^salvia|^rosmarino"),
    "spread cheese": ("dairy", r"formaggio spalmabile|crema di formaggio"),
    "sugar": ("pantry", r"^zucchero"),
    "sweet spreads": ("pantry", r"nutella|crema spalmabile|crema .*nocciol"),
    "syrup": ("pantry", r"sciroppo"),
    "tea": ("drinks", r"\bt[eè]\b|infuso|tisana|camomilla"),
    "tidbits": ("snacks", "S"),
    "toilet cleaner": ("household", "S"),
    "tropical fruit": ("produce", "L"),
    "turkey": ("meat", "L"),
    "vinegar": ("pantry", r"^aceto"),
    "waffles": ("snacks", r"wafer|waffel"),
    "whipped/sour cream": ("dairy", r"panna montata|panna spray|panna da montare"),
    "whisky": ("alcohol", "S"),
    "white bread": ("bakery", "L"),
    "white wine": ("alcohol", r"vino bianco|pinot grigio|vermentino|soave"),
    "whole milk": ("dairy", r"latte .*intero|latte intero|^latte$"),
    "yogurt": ("dairy", r"^yogurt"),
    "zwieback": ("bakery", r"fette biscottate"),
}
AGE_RESTRICTED = {"alcohol"}
SENSITIVE_PRODUCTS = {"female sanitary products"}
# Illustrative base prices (EUR) per category; each item varies around it deterministically.
BASE_PRICE = {
    "dairy": 1.6, "produce": 2.2, "bakery": 1.9, "meat": 6.5, "fish": 8.0, "deli": 3.2,
    "drinks": 1.4, "alcohol": 7.5, "frozen": 3.4, "pantry": 2.3, "snacks": 1.8,
    "household": 3.9, "personal care": 3.6, "pets": 2.9, "garden": 4.5, "other": 2.0,
}  # fmt: skip
# Open Food Facts "pnns_groups_2" -> a demo category.
PNNS = {
    "Milk and yogurt": "dairy", "Cheese": "dairy", "Fats": "dairy", "Eggs": "dairy",
    "Cereals": "pantry", "Legumes": "pantry", "Dressings and sauces": "pantry", "Soups": "pantry",
    "Breakfast cereals": "pantry", "Potatoes": "pantry", "Teas and herbal teas and coffees": "pantry",
    "Sweets": "snacks", "Biscuits and cakes": "snacks", "Salty and fatty products": "snacks",
    "Nuts": "snacks", "Chocolate products": "snacks", "Dried fruits": "snacks", "Appetizers": "snacks",
    "Vegetables": "produce", "vegetables": "produce", "Fruits": "produce",
    "Processed meat": "deli", "One-dish meals": "deli", "Pizza pies and quiche": "deli",
    "Sandwiches": "deli", "Meat": "meat", "Fish and seafood": "fish",
    "Bread": "bakery", "pastries": "bakery",
    "Alcoholic beverages": "alcohol",
    "Waters and flavored waters": "drinks", "Sweetened beverages": "drinks", "Fruit juices": "drinks",
    "Fruit nectars": "drinks", "Plant-based milk substitutes": "drinks",
    "Artificially sweetened beverages": "drinks", "Unsweetened beverages": "drinks",
    "Ice cream": "frozen",
}  # fmt: skip
LOOSE_PREFIX = "20"
LABEL_PREFIX = "21"


def _price(item_id: str, category: str) -> float:
    wobble = int(hashlib.sha256(item_id.encode()).hexdigest()[:4], 16) / 0xFFFF  # 0..1
    return round(
        round(BASE_PRICE[category] * (0.6 + 0.9 * wobble), 1) - 0.01, 2
    )  # x.x9 shelf prices


def _off_category(row: dict[str, str]) -> str:
    group = row.get("pnns_groups_2", "")
    if group in PNNS:
        return PNNS[group]
    text = (row.get("categories", "") + " " + row.get("product_name", "")).lower()
    for words, category in [
        (("latte", "yogurt", "formaggi", "burro", "uova"), "dairy"),
        (("vino", "birra", "liquor", "spumante"), "alcohol"),
        (("acqua", "bevand", "succo", "tè", "caff"), "drinks"),
        (("biscott", "cioccolat", "snack", "caramell", "dolci"), "snacks"),
        (("prosciutto", "salame", "salum"), "deli"),
        (("carne", "bovino", "pollo", "suino"), "meat"),
        (("pesce", "tonno"), "fish"),
        (("pane", "grissin", "focacc"), "bakery"),
        (("surgelat", "gelat"), "frozen"),
        (("verdur", "frutta", "pomodor", "ortagg"), "produce"),
        (("shampoo", "doccia", "sapone", "crema"), "personal care"),
    ]:
        if any(word in text for word in words):
            return category
    return "pantry"


def read_off(path: Path) -> list[dict[str, str]]:
    """Open Food Facts products with a valid, globally assigned EAN-13 and a name."""
    csv.field_size_limit(sys.maxsize)  # some ingredient lists are longer than the default
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    products = []
    seen: set[str] = set()
    for row in rows:
        code = (row.get("code") or "").strip()  # read as text: leading zeros matter
        # Open Food Facts keeps some names HTML-escaped ("Latte &quot;Alta qualita&quot;").
        name = " ".join(html.unescape(row.get("product_name") or "").split())
        if name.count('"') % 2:  # a name cut off inside its quotes
            name = name.replace('"', "").strip()
        # 20-29 are restricted-circulation codes: another store's in-store labels, not products.
        if len(code) != 13 or not ean.is_valid(code) or code[:2] in {str(p) for p in range(20, 30)}:
            continue
        if not name or code in seen:
            continue
        seen.add(code)
        products.append({**row, "code": code, "product_name": name})
    return products


def read_baskets(path: Path) -> list[tuple[str, date, str]]:
    """(member number, date, product name) lines of the groceries-dated file."""
    lines = []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            day = datetime.strptime(row["Date"].strip(), "%d-%m-%Y").date()
            lines.append((row["Member_number"].strip(), day, row["itemDescription"].strip()))
    return lines


def _brand(row: dict[str, str]) -> str:
    return (row.get("brands") or "").split(",")[0].strip()[:60]


def build(data: Path, out: Path = STORE_DIR) -> dict[str, int]:
    """Write the demo store files into ``out``; return counts of what was written."""
    baskets = read_baskets(data / "groceries-dated" / "Groceries_dataset.csv")
    off = read_off(data / "openfoodfacts" / "openfoodfacts_it_1263.tsv")
    names = sorted({name for _, _, name in baskets})
    unknown = [n for n in names if n not in {k.strip() for k in PRODUCTS}]
    if unknown:
        raise SystemExit(f"products without a category mapping: {unknown}")
    mapping = {k.strip(): v for k, v in PRODUCTS.items()}
    used_codes: set[str] = set()
    catalog: list[dict[str, Any]] = []
    loose = label = 0
    for name in names:
        category, kind = mapping[name]
        item_id = item_id_from_name(name)
        title = name[0].upper() + name[1:]
        tags = []
        if category in AGE_RESTRICTED:
            tags.append("age_restricted")
        if name in SENSITIVE_PRODUCTS:
            tags.append("sensitive")
        row: dict[str, Any] = {"item_id": item_id, "name": title, "brand": "", "category": category}
        match = None
        if kind not in {"L", "S"}:
            pattern = re.compile(kind, re.IGNORECASE)
            match = next(
                (
                    p
                    for p in off
                    if p["code"] not in used_codes
                    and pattern.search(p["product_name"])  # the name, not loose categories
                ),
                None,
            )
        if match is not None:
            used_codes.add(match["code"])
            row.update(
                gtin=match["code"],
                name=f"{title} · {match['product_name']}"[:90],
                brand=_brand(match),
                source="openfoodfacts",
            )
        elif kind == "L":
            loose += 1
            row.update(gtin=ean13(LOOSE_PREFIX + f"{loose:05d}00000"), source="groceries-dated")
            tags.append("loose")
        else:
            label += 1
            row.update(gtin=ean13(LABEL_PREFIX + f"{label:05d}00000"), source="groceries-dated")
        row["price"] = _price(item_id, category)
        row["tags"] = ";".join(tags)
        catalog.append(row)
    for product in off:
        if product["code"] in used_codes:
            continue
        item_id = f"off-{product['code']}"
        category = _off_category(product)
        catalog.append(
            {
                "item_id": item_id,
                "name": product["product_name"][:90],
                "brand": _brand(product),
                "category": category,
                "gtin": product["code"],
                "price": _price(item_id, category),
                "tags": "age_restricted" if category in AGE_RESTRICTED else "",
                "source": "openfoodfacts",
            }
        )
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "catalog.jsonl", "w", encoding="utf-8") as handle:
        for row in catalog:
            handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    categories = {row["item_id"]: row["category"] for row in catalog}
    (out / "categories.json").write_text(
        json.dumps(categories, indent=0, sort_keys=True) + "\n", encoding="utf-8"
    )
    _write_history(out / "history.csv.gz", baskets)
    _write_members(out / "members.csv", baskets)
    return {
        "items": len(catalog),
        "groceries_items": len(names),
        "with_real_barcode": sum(1 for r in catalog if r["source"] == "openfoodfacts"),
        "groceries_matched_to_off": len(used_codes),
        "loose": loose,
        "store_labelled": label,
        "basket_lines": len(baskets),
        "members": len({m for m, _, _ in baskets}),
    }


def _write_history(path: Path, baskets: list[tuple[str, date, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["member", "date", "item_id"])
    for member, day, name in sorted(baskets, key=lambda b: (int(b[0]), b[1], b[2])):
        writer.writerow([member, day.isoformat(), item_id_from_name(name)])
    # mtime=0: the same data gives the same bytes (no churn in git)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as handle:
        handle.write(buffer.getvalue().encode("utf-8"))


def _write_members(path: Path, baskets: list[tuple[str, date, str]]) -> None:
    days: dict[str, set[date]] = collections.defaultdict(set)
    for member, day, _ in baskets:
        days[member].add(day)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["member", "card", "basket_days", "last_basket"])
        for member in sorted(days, key=int):
            writer.writerow(
                [member, card_code(member), len(days[member]), max(days[member]).isoformat()]
            )


def main(argv: list[str] | None = None) -> None:
    """Rebuild ``kiosk_demo/store/`` from the real data.

    Example:
        python -m shelfwise.kiosk_demo.build_store --data ../shared/data
    """
    parser = argparse.ArgumentParser(prog="python -m shelfwise.kiosk_demo.build_store")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=STORE_DIR, help="where to write the store")
    args = parser.parse_args(argv)
    counts = build(args.data, args.out)
    print(json.dumps(counts, indent=2))


if __name__ == "__main__":
    main()
