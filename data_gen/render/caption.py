"""Captions built only from what a render drew (its attributes), 10-30 words."""

from __future__ import annotations

MATERIAL_WORDS = {"brick": "brick", "plaster": "plastered", "stone": "stone", "glass": "glass-fronted",
                  "wood": "wooden", "concrete": "concrete"}
ROOF_WORDS = {"flat": "flat roofs", "gabled": "gabled roofs", "mansard": "mansard roofs",
              "crenellated": "crenellated parapets", "copper": "green copper roofs"}
MIN_WORDS, MAX_WORDS = 10, 30


def road_words(attrs: dict) -> str:
    road = attrs["road"]
    if road["paving"]:
        return "a paved pedestrian street"
    if road["markings"] == "lanes":
        return "a wide avenue"
    if road["width_m"] < 10.5:
        return "a narrow street"
    return "a street"


def article(phrase: str) -> str:
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


def counted(phrases: list[str]) -> list[str]:
    """["white car", "white car", "blue bus"] -> ["two white cars", "a blue bus"]."""
    out = []
    for p in dict.fromkeys(phrases):
        n = phrases.count(p)
        out.append(article(p) if n == 1 else f"{'two' if n == 2 else 'several'} {p}s")
    return out


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def make_caption(attrs: dict) -> str:
    colours = attrs["facade_colours"]
    material = MATERIAL_WORDS[attrs["material"]]
    if colours:
        subject = f"{attrs['height_class']} {colours[0]} {material} buildings"
    else:
        subject = f"distant {material} buildings"
    if attrs["view"].startswith("street"):
        head = f"a street view down {road_words(attrs)} lined with {subject}"
    else:
        head = f"a street view of {subject} across {road_words(attrs)}"
    extras = [article(f"{lm['colour']} {lm['kind']}") for lm in attrs["landmarks"][:1]]
    extras += counted(attrs["vehicles"])
    if attrs["road"]["tram_rails"] and not any("tram" in v for v in attrs["vehicles"]):
        extras.append("tram rails")
    if attrs["street_trees"] or attrs["foreground_tree"]:
        extras.append("trees")
    if attrs["awning_colours"]:
        extras.append(f"{attrs['awning_colours'][0]} shop awnings")
    if attrs["roof_styles"]:
        extras.append(ROOF_WORDS[attrs["roof_styles"][0]])
    tail = [f"{attrs['weather']} {attrs['time_of_day']}"]
    if attrs["sign_text"]:
        tail.append(f"a street sign reading {attrs['sign_text']}")
    while True:
        body = head + (f" with {_join(extras)}" if extras else "")
        caption = ", ".join([body] + tail)
        if len(caption.split()) <= MAX_WORDS or not extras:
            break
        extras.pop()
    if len(caption.split()) > MAX_WORDS:   # very long street names: drop the road phrase
        caption = ", ".join([f"a street view of {subject}"] + tail)
    if len(caption.split()) < MIN_WORDS:
        caption += f", {ROOF_WORDS[attrs['roof_style']]}"
    return caption
