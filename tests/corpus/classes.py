"""The classes of the corpus (see __init__.py). Each builder takes the seed and returns one
CorpusClass; its random numbers come from a generator of its own, so adding to one class leaves the
others unchanged."""
import datetime
import random
import uuid

from bson import Binary, Code, DatetimeMS, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp

from corpus import Check, CorpusClass, Op

UTC = datetime.timezone.utc


def _rng(seed, name):
    return random.Random(f"{seed}/{name}")


def _oid(rng):
    return ObjectId(rng.randbytes(12))


def _uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _date(rng, start=2019, end=2025):
    begin = datetime.datetime(start, 1, 1, tzinfo=UTC)
    span = (datetime.datetime(end, 1, 1, tzinfo=UTC) - begin).total_seconds()
    # Milliseconds only: BSON dates hold no more.
    return begin + datetime.timedelta(milliseconds=int(rng.random() * span * 1000))


def _money(rng, low=1, high=500):
    return Decimal128(f"{rng.uniform(low, high):.2f}")


FIRST = ["Ana", "Bjørn", "Chloé", "Dmitri", "Eun-ji", "Fatima", "Giovanni", "Hiroshi", "Ingrid", "José", "Kwame",
         "Léa", "Mateus", "Nguyễn", "Olga", "Priya", "Quentin", "Rūta", "Søren", "Tomás", "Ümit", "Valentina",
         "Wei", "Ximena", "Yusuf", "Zoë"]
LAST = ["Silva", "Hansen", "Dubois", "Ivanov", "Kim", "Haddad", "Rossi", "Tanaka", "Berg", "García", "Mensah",
        "Martin", "Costa", "Văn", "Petrova", "Sharma", "Leroy", "Kazlauskas", "Nielsen", "Ruiz", "Yılmaz", "Bianchi",
        "Zhang", "López", "Demir", "O'Brien"]
CITIES = [("Oslo", "NO"), ("Lisboa", "PT"), ("São Paulo", "BR"), ("München", "DE"), ("Kraków", "PL"),
          ("Montréal", "CA"), ("Zürich", "CH"), ("東京", "JP"), ("Αθήνα", "GR"), ("Reykjavík", "IS"),
          ("İstanbul", "TR"), ("Lagos", "NG"), ("Austin", "US"), ("Dublin", "IE")]


def _person(rng):
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return first, last, f"{first}.{last}".lower().replace(" ", "").replace("'", "") + "@example.com"


def _address(rng):
    city, country = rng.choice(CITIES)
    return {"line1": f"{rng.randint(1, 250)} {rng.choice(['Main St', 'Rua Augusta', 'Hauptstraße', 'Rue de la Paix'])}",
            "city": city, "postcode": f"{rng.randint(1000, 99999)}", "country": country}


# ----------------------------------------------------------------------------------------------
def maps(seed):
    """Sub-documents keyed by data, not by schema: every document brings keys no other has, so the
    distinct keys of the collection run into the thousands."""
    rng = _rng(seed, "maps")
    docs, checks = [], []
    tiers = ["Bronze", "Silver", "Gold", "Platinum"]
    benefits = ["sports tickets", "concert tickets", "car rental", "shopping discounts", "24 hour dedicated line",
                "concierge services", "travel insurance", "airline lounge access"]
    # Realistic: MongoDB's sample_analytics.customers, tier_and_details keyed by a 32-hex id.
    for i in range(30):
        first, last, email = _person(rng)
        details = {}
        for _ in range(rng.randint(1, 4)):
            h = rng.randbytes(16).hex()
            details[h] = {"tier": rng.choice(tiers), "benefits": rng.sample(benefits, rng.randint(0, 3)),
                          "active": rng.random() < 0.8, "id": h}
        doc = {"_id": _oid(rng), "username": f"{first[:3].lower()}{rng.randint(10, 9999)}", "name": f"{first} {last}",
               "address": f"{rng.randint(1, 999)} {rng.choice(LAST)} Road, {rng.choice(CITIES)[0]}",
               "birthdate": _date(rng, 1950, 2004), "email": email,
               "accounts": [rng.randint(100000, 999999) for _ in range(rng.randint(1, 6))], "tier_and_details": details}
        docs.append(doc)
        if i == 0:
            h = next(iter(details))
            checks.append(Check(doc["_id"], ("tier_and_details", h, "tier"), details[h]["tier"],
                                "a 32-hex-keyed sub-document's field"))
            checks.append(Check(doc["_id"], ("tier_and_details", h, "id"), h, "the id repeated inside it"))
    # UUID keys: sessions per user.
    for i in range(15):
        sessions = {_uuid(rng): {"started": _date(rng, 2024, 2025), "pages": rng.randint(1, 60),
                                 "agent": rng.choice(["Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0", "okhttp/4.12"])}
                    for _ in range(rng.randint(20, 40))}
        docs.append({"_id": f"sessions-{i:02}", "user": _person(rng)[2], "sessions": sessions})
        if i == 1:
            k = list(sessions)[7]
            checks.append(Check(f"sessions-{i:02}", ("sessions", k, "pages"), sessions[k]["pages"], "a UUID key"))
    # ObjectId-hex keys: votes per voter.
    for i in range(15):
        votes = {str(_oid(rng)): rng.choice([1, -1]) for _ in range(rng.randint(40, 60))}
        docs.append({"_id": f"votes-{i:02}", "post": f"post {i}", "votes": votes})
        if i == 2:
            k = list(votes)[-1]
            checks.append(Check(f"votes-{i:02}", ("votes", k), votes[k], "an ObjectId-hex key"))
    # Date keys: a store's daily figures.
    for i in range(12):
        start = datetime.date(2023, 1, 1) + datetime.timedelta(days=rng.randint(0, 600))
        daily = {(start + datetime.timedelta(days=d)).isoformat(): {"visits": rng.randint(0, 5000),
                                                                      "revenue": _money(rng, 0, 20000)}
                 for d in range(rng.randint(28, 31))}
        docs.append({"_id": f"daily-{i:02}", "store": f"store {rng.randint(1, 300)}", "daily": daily})
        if i == 3:
            k = list(daily)[0]
            checks.append(Check(f"daily-{i:02}", ("daily", k, "visits"), daily[k]["visits"], "a date key"))
    # Integer-string keys.
    for i in range(8):
        slots = {str(n): rng.choice(["booked", "free", "blocked"]) for n in rng.sample(range(0, 2000), 40)}
        scores = {str(n): rng.randint(0, 100) for n in range(rng.randint(5, 30))}
        docs.append({"_id": f"slots-{i:02}", "room": f"R{rng.randint(100, 999)}", "slots": slots, "scores": scores})
        if i == 0:
            checks.append(Check("slots-00", ("scores", "17"), scores["17"], 'the key "17"'))
    # Locale keys (BCP 47 and POSIX spellings).
    locales = ["en-US", "en-GB", "pt_BR", "pt-PT", "zh-Hant-TW", "zh_CN", "sr-Latn-RS", "de", "fr-CA", "es-419",
               "ja-JP", "ar-EG", "he-IL", "x-klingon", "nb_NO.UTF-8"]
    for i in range(10):
        chosen = rng.sample(locales, rng.randint(3, len(locales)))
        title = {loc: f"{loc} title {i} «{rng.choice(LAST)}»" for loc in chosen}
        docs.append({"_id": f"i18n-{i:02}", "sku": f"SKU-{i:05}", "title": title,
                     "description": {loc: f"{loc} description " + "lorem " * rng.randint(1, 30) for loc in chosen}})
        if "pt_BR" in title and not any(c.why == "a locale key" for c in checks):
            checks.append(Check(f"i18n-{i:02}", ("title", "pt_BR"), title["pt_BR"], "a locale key"))
    # User input as keys: survey answers, hashtags.
    questions = ["What's your name?", "Favourite colour (UK)", "  leading space", "trailing space ", "e-mail",
                 "C++ or Rust?", "100% sure?", "who/what/where", "x:y", "über-cool", "#tag", "node.js", "a.b.c",
                 "$ spent per month", "emoji 😀 ok?", "tab\tin key", "Q1. How likely (0-10)", "¿Qué tal?",
                 "日本語の質問", "multi\nline", "semi;colon", "quote's", 'double "quoted"', "back\\slash", "*"]
    for i in range(10):
        answers = {q: rng.choice(["yes", "no", rng.randint(0, 10), f"answer {rng.randint(1, 99)}"])
                   for q in rng.sample(questions, rng.randint(8, len(questions)))}
        answers["What's your name?"] = rng.choice(FIRST)
        tags = {f"#{rng.choice(['sale', 'Summer', 'c++', 'node.js', 'über', '日本', 'a b'])}{n}": rng.randint(1, 50)
                for n in range(rng.randint(3, 12))}
        docs.append({"_id": f"survey-{i:02}", "answers": answers, "tags": tags})
        if i == 0:
            checks.append(Check("survey-00", ("answers", "What's your name?"), answers["What's your name?"],
                                "a question as a key"))
    return CorpusClass("maps", maps.__doc__, docs, checks=checks)


# ----------------------------------------------------------------------------------------------
def _chain(levels, leaf, key="n", extra=None):
    """A document `levels` deep as MongoDB counts (the document itself is level 1): each level
    holds {depth, key: next level}; the last holds leaf. extra(depth) adds fields to each level."""
    d = {"depth": levels - 1, "leaf": leaf}
    for k in range(levels - 2, -1, -1):
        d = {"depth": k, **(extra(k) if extra else {}), (key(k) if callable(key) else key): d}
    return d


def deep(seed):
    """Nesting: threads and trees as applications store them, then 40, 99 and 100 levels
    (MongoDB stores at most 100: the document and 99 levels of sub-documents or arrays; the
    stand-in takes more) of sub-documents, of documents and arrays mixed, and of arrays alone."""
    rng = _rng(seed, "deep")
    docs, checks = [], []
    # Realistic: comment threads (each reply nested in the one before), category trees, JSON schemas.
    for i in range(6):
        reply = None
        for depth in range(rng.randint(3, 12), 0, -1):
            reply = {"author": rng.choice(FIRST), "text": f"reply at {depth}", "at": _date(rng, 2024, 2025),
                     "likes": rng.randint(0, 40), **({"reply": reply} if reply else {})}
        docs.append({"_id": f"thread-{i:02}", "post": {"title": f"Thread {i}: {rng.choice(LAST)} asks", "body": "…",
                                                        "reply": reply}})
    checks.append(Check("thread-00", ("post", "title"), docs[0]["post"]["title"], "a realistic nested title"))
    checks.append(Check("thread-00", ("post", "reply", "reply", "text"), "reply at 2",
                        "a reply three levels down"))
    for i in range(3):
        tree = {"name": f"leaf {i}"}
        for level, name in enumerate(["Root", "Electronics", "Computers", "Laptops", "Gaming", "17 inch"][::-1]):
            tree = {"name": name, "slug": name.lower().replace(" ", "-"), "child": tree, "level": 6 - level}
        docs.append({"_id": f"category-{i:02}", "tree": tree})
    for i in range(3):
        schema = {"type": "string", "maxLength": 255}
        for k in range(8):
            schema = {"type": "object", "required": [f"p{k}"], "properties": {f"p{k}": schema,
                                                                             "note": {"type": "string"}}}
        docs.append({"_id": f"schema-{i:02}", "$schema": "https://json-schema.org/draft/2020-12/schema",
                     "schema": schema})
    # Hostile: chains 40, 99 and 100 levels deep.
    for levels in (40, 99, 100):
        docs.append({"_id": f"chain-{levels}", **_chain(levels, f"bottom of {levels}")})
        checks.append(Check(f"chain-{levels}", ("n",) * (levels - 1) + ("leaf",), f"bottom of {levels}",
                            f"the leaf {levels} levels down"))
        # A different field name at every level, scalars beside each.
        docs.append({"_id": f"named-{levels}", **_chain(levels, "named bottom", key=lambda k: f"level_{k + 1:03}",
                                                        extra=lambda k: {"label": f"L{k}", "weight": k * 1.5})})
    # Documents and arrays alternating: {a: [{a: [...]}]}, 40 and 100 levels.
    for levels in (40, 100):
        node = {"leaf": f"mixed {levels}"}
        if (levels - 1) % 2:
            node = {"wrap": node}
        # Each wrap (a document in an array) takes two levels; the document itself is level 1.
        for k in range((levels - 1) // 2):
            node = {"k": k, "a": [node]}
        docs.append({"_id": f"mixed-{levels}", **node})
    # Arrays alone: 50 and 99 arrays of arrays under the document.
    for levels in (51, 100):
        v = ["bottom", levels]
        for _ in range(levels - 2):
            v = [v]
        docs.append({"_id": f"arrays-{levels}", "m": v})
    checks.append(Check("mixed-40", ("a", 0, "k"), 17, "the first document inside the alternating nest"))
    return CorpusClass("deep", deep.__doc__, docs, checks=checks)


# ----------------------------------------------------------------------------------------------
def arrays(seed):
    """Arrays: orders with shipments, packages and items (three levels of child tables),
    playlists, GeoJSON, matrices; then 20 levels of arrays of documents, 20 levels of arrays of
    arrays, arrays of arrays of documents, mixed elements, long array paths, large arrays."""
    rng = _rng(seed, "arrays")
    docs, checks = [], []
    for i in range(8):
        shipments = [{"carrier": rng.choice(["DHL", "UPS", "Posten", "CTT"]),
                      "tracking": f"TR{rng.randint(10**9, 10**10)}",
                      "packages": [{"weight_kg": round(rng.uniform(0.1, 30), 3),
                                    "items": [{"sku": f"SKU-{rng.randint(1, 999):04}", "qty": rng.randint(1, 5)}
                                              for _ in range(rng.randint(1, 4))]}
                                   for _ in range(rng.randint(1, 3))]}
                     for _ in range(rng.randint(1, 3))]
        docs.append({"_id": f"shipment-order-{i:02}", "placed": _date(rng), "shipments": shipments})
    first = docs[0]["shipments"][0]["packages"][0]["items"][0]
    checks.append(Check("shipment-order-00", ("shipments", 0, "packages", 0, "items", 0, "sku"), first["sku"],
                        "an item three array levels down"))
    for i in range(5):
        docs.append({"_id": f"playlist-{i:02}", "name": f"Mix {i}", "tracks": [
            {"title": f"Track {t}", "artists": [{"name": rng.choice(LAST)} for _ in range(rng.randint(1, 3))],
             "duration_s": rng.randint(90, 600), "genres": rng.sample(["rock", "jazz", "fado", "k-pop", "samba"], 2)}
            for t in range(rng.randint(3, 25))]})
    for i in range(4):
        def ring():
            lng, lat = rng.uniform(-180, 170), rng.uniform(-80, 70)
            pts = [[round(lng + dx, 6), round(lat + dy, 6)] for dx, dy in ((0, 0), (1, 0), (1, 1), (0, 1))]
            return pts + [pts[0]]
        docs.append({"_id": f"geo-{i:02}", "geometry": {"type": "MultiPolygon",
                                                         "coordinates": [[ring(), ring()] for _ in range(3)]}})
    docs.append({"_id": "matrix", "m": [[rng.randint(-9, 9) for _ in range(4)] for _ in range(4)],
                 "identity": [[1.0, 0.0], [0.0, 1.0]]})
    # 20 levels of arrays of documents, one element per level below the third.
    def kids(level, key, width):
        node = {"v": level, "name": f"node {level}"}
        if level < 20:
            node[key(level + 1)] = [kids(level + 1, key, width) for _ in range(width if level < 3 else 1)]
        return node
    docs.append({"_id": "nest-20", **kids(0, lambda lv: "kids", 2)})
    checks.append(Check("nest-20", ("kids", 0) * 20 + ("v",), 20, "the 20th level of arrays of documents"))
    docs.append({"_id": "nest-20-named", **kids(0, lambda lv: f"level_{lv:02}_children_of_this_node", 1)})
    # Long array paths: 10 levels, each array named with 300 characters.
    node = {"v": "bottom"}
    for lv in range(10, 0, -1):
        node = {"v": lv, f"{lv:02}" + "x" * 298: [node]}
    docs.append({"_id": "long-array-names", **node})
    # Arrays of arrays: 20 levels of scalars, and documents at the bottom of 20 levels.
    v, w = [1, 2], [{"x": 1, "y": "bottom"}]
    for _ in range(19):
        v, w = [v, [0]], [w]
    docs.append({"_id": "arrays-of-arrays-20", "v": v, "w": w})
    docs.append({"_id": "arrays-of-arrays-of-docs", "pairs": [[{"a": 1}, {"b": 2}], [{"a": 3}], []],
                 "grid": [[{"cell": f"{r},{c}"} for c in range(3)] for r in range(3)]})
    docs.append({"_id": "mixed-elements", "bag": [1, "two", {"three": 3}, [4, [5]], None, True, 6.5, {"three": "3"},
                                                   Decimal128("7.25"), _date(rng), {}]})
    checks.append(Check("mixed-elements", ("bag", 2, "three"), 3, "a document among scalars"))
    docs.append({"_id": "empties", "none": [], "nulls": [None, None], "empty_docs": [{}, {}], "nested_empty": [[]],
                 "docs_and_nulls": [None, {"a": 1}, None]})
    docs.append({"_id": "large-array-docs", "rows": [{"i": k, "sq": k * k, "label": f"row {k}"} for k in range(2000)]})
    checks.append(Check("large-array-docs", ("rows", 1999, "label"), "row 1999", "the last of 2000 child rows"))
    docs.append({"_id": "large-array-scalars", "samples": [round(rng.gauss(0, 1), 6) for _ in range(20000)]})
    return CorpusClass("arrays", arrays.__doc__, docs, checks=checks)


# ----------------------------------------------------------------------------------------------
def wide(seed):
    """Width: product catalogs and sensor frames with hundreds of attributes, then 2,000 fields at
    the top level, 500 in one sub-document, and rows made large by many long strings."""
    rng = _rng(seed, "wide")
    docs, checks = [], []
    nouns = ["screen", "battery", "weight", "height", "width", "depth", "ram", "storage", "cpu_clock", "gpu_memory",
             "usb_ports", "hdmi_ports", "fan_noise", "power", "voltage", "current", "lumens", "refresh", "latency",
             "warranty"]
    units = ["in", "mm", "cm", "g", "kg", "mah", "gb", "tb", "ghz", "db", "w", "v", "a", "hz", "ms", "months", "count",
             "pct", "min", "max"]
    pool = [f"{n}_{u}" for n in nouns for u in units] + [f"{n}_{u}_{k}" for n in nouns for u in units for k in (2, 3)]
    for i in range(8):
        attrs = {name: rng.choice([rng.randint(0, 5000), round(rng.uniform(0, 100), 2), f"{rng.randint(1, 9)} units"])
                 for name in rng.sample(pool, rng.randint(40, 150))}
        docs.append({"_id": f"product-{i:02}", "name": f"Product {i}", "attributes": attrs, **{
            f"top_{k}": v for k, v in list(attrs.items())[:30]}})
    for i in range(5):
        docs.append({"_id": f"frame-{i:02}", "at": _date(rng, 2024, 2025),
                     **{f"ch_{c:04}": round(rng.uniform(-1, 1), 5) for c in sorted(rng.sample(range(2000), 300))}})
    top = {f"attr_{k:04}": (k if k % 3 else f"value {k}") for k in range(2000)}
    docs.append({"_id": "top-2000", **top})
    checks.append(Check("top-2000", ("attr_1999",), top["attr_1999"], "the 2,000th top-level field"))
    checks.append(Check("top-2000", ("attr_0001",), 1, "the 2nd top-level field"))
    for i in range(3):
        specs = {f"spec_{k:03}": f"{rng.choice(nouns)} {rng.randint(0, 999)}" for k in range(500)}
        docs.append({"_id": f"specs-500-{i}", "specs": specs})
        if i == 0:
            checks.append(Check("specs-500-0", ("specs", "spec_499"), specs["spec_499"],
                                "the 500th sub-document field"))
    # Row size: strings too long for VARCHAR, many strings at VARCHAR's edge in 4-byte characters.
    for i in range(3):
        docs.append({"_id": f"long-text-{i}", **{f"text_{k:02}": "".join(rng.choice("abcdefghij ") for _ in range(2000))
                                                 for k in range(60)}})
    checks.append(Check("long-text-0", ("text_59",), docs[-3]["text_59"], "a 2,000-character string"))
    for i in range(2):
        docs.append({"_id": f"emoji-255-{i}", **{f"e_{k:03}": "😀" * 255 for k in range(200)}})
    checks.append(Check("emoji-255-0", ("e_199",), "😀" * 255, "255 four-byte characters"))
    docs.append({"_id": "text-edges", "t65535": "a" * 65535, "t65536": "a" * 65536, "e16384": "😀" * 16384,
                 "big": "b" * 300000})
    return CorpusClass("wide", wide.__doc__, docs, checks=checks)


# ----------------------------------------------------------------------------------------------
def names(seed):
    """Field names: spreadsheet headers and other languages as applications import them, then
    4-byte UTF-8, control characters, 300-character names, names differing only in case, names
    that sanitize to the same identifier, dots, $-prefixes, empty names, names of the mapping's
    own columns, SQL syntax, digits, Unicode normalization and invisible characters."""
    rng = _rng(seed, "names")
    docs, checks = [], []
    headers = ["First Name", "Last Name", "E-mail Address", "Phone #", "Zip/Postal Code", "Date of Birth (MM/DD/YYYY)",
               "Straße", "電話番号", "Notes (optional)", "Company, Inc.", "Amount (€)", "Ünïcödé", "Ação", "Größe (cm)"]
    for i in range(12):
        first, last, email = _person(rng)
        docs.append({"_id": f"import-{i:02}", "First Name": first, "Last Name": last, "E-mail Address": email,
                     "Phone #": f"+47 {rng.randint(40000000, 99999999)}",
                     "Zip/Postal Code": f"{rng.randint(1000, 9999)}",
                     **{h: rng.choice(["x", rng.randint(0, 100), None]) for h in rng.sample(headers[5:], 5)}})
    checks.append(Check("import-00", ("E-mail Address",), docs[0]["E-mail Address"], "a spreadsheet header"))
    docs.append({"_id": "four-byte", "emoji😀": "smile", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢": "fraktur", "🙂": 1, "名前": "Tanaka",
                 "nested": {"😀": {"𝔘": "deep"}}})
    checks += [Check("four-byte", ("emoji😀",), "smile", "a name with an emoji"),
               Check("four-byte", ("𝔘𝔫𝔦𝔠𝔬𝔡𝔢",), "fraktur", "a name of mathematical letters"),
               Check("four-byte", ("nested", "😀", "𝔘"), "deep", "4-byte names nested")]
    docs.append({"_id": "control", "a\x01b": 1, "tab\there": 2, "new\nline": 3, "cr\rret": 4, "del\x7f": 5,
                 "bell\x07": 6, "esc\x1b[31m": 7})
    checks += [Check("control", ("a\x01b",), 1, "a name with \\x01"),
               Check("control", ("new\nline",), 3, "a name with \\n")]
    long_a, long_e = "x" * 300, "😀" * 300
    docs.append({"_id": "long-300", long_a: 1, ("long_name_" * 30)[:300]: 2, long_e: 3,
                 "y" * 300: {"z" * 300: {"w" * 300: {"v" * 300: "four long names deep"}}}})
    checks += [Check("long-300", (long_a,), 1, "a 300-character name"),
               Check("long-300", (long_e,), 3, "300 emoji as a name"),
               Check("long-300", ("y" * 300, "z" * 300, "w" * 300, "v" * 300), "four long names deep",
                     "a path of four 300-character names")]
    docs.append({"_id": "case", "Name": 1, "name": 2, "NAME": 3, "nAmE": 4})
    checks += [Check("case", ("Name",), 1, "case 1 of 4"), Check("case", ("nAmE",), 4, "case 4 of 4")]
    docs.append({"_id": "sanitize", "a_b": 1, "a-b": 2, "a b": 3, "a/b": 4, "a:b": 5, "a😀b": 6, "a\tb": 7,
                 "a": {"b": 8}, "a+b": 9, "A_B": 10})
    checks += [Check("sanitize", ("a-b",), 2, "a-b beside a_b"), Check("sanitize", ("a", "b"), 8, "{a:{b}} beside a_b"),
               Check("sanitize", ("A_B",), 10, "A_B beside a_b")]
    docs.append({"_id": "dotted", "a.b": "dot", "x": {"c.d": 1, "e": {"f.g.h": 2}}, ".": 3, "..": 4, ".lead": 5,
                 "trail.": 6, "a..b": 7})
    checks += [Check("dotted", ("a.b",), "dot", "a top-level dotted name"),
               Check("dotted", ("x", "e", "f.g.h"), 2, "a nested dotted name")]
    # MongoDB's own example (manual, "Field Names with Periods and Dollar Signs"), and names that
    # spell Extended JSON's type wrappers in sub-documents.
    docs.append({"_id": "dollar", "$price": 50.0, "quantity": 30, "$id": "h1961-01",
                 "location": {"$db": "novels", "$ref": "2007042768", "$inc": True}})
    checks += [Check("dollar", ("$price",), 50, "a top-level $ name"),
               Check("dollar", ("location", "$db"), "novels", "a nested $ name")]
    # One document each, so that one refused does not hide another silently taken for a typed value.
    lookalikes = [("numberLong", {"$numberLong": "5"}), ("numberInt", {"$numberInt": "7"}),
                  ("numberDecimal", {"$numberDecimal": "1.5"}), ("oid", {"$oid": "65a1b2c3d4e5f60718293a4b"}),
                  ("oid-not-hex", {"$oid": "not hex"}), ("date", {"$date": "2024-01-31T00:00:00Z"}),
                  ("date-text", {"$date": "not a date"}), ("binary-legacy", {"$binary": "AAE=", "$type": "00"}),
                  ("regex-legacy", {"$regex": "a", "$options": ""}), ("undefined", {"$undefined": True}),
                  ("minKey", {"$minKey": 1}), ("timestamp", {"$timestamp": {"t": 1, "i": 2}}),
                  ("symbol", {"$symbol": "s"}), ("code", {"$code": "x"}), ("dollar-only", {"$": 1, "$$": 2})]
    for label, sub in lookalikes:
        docs.append({"_id": f"ejson-{label}", "sub": sub})
        first = next(iter(sub))
        if not isinstance(sub[first], dict):
            checks.append(Check(f"ejson-{label}", ("sub", first), sub[first],
                                f"a sub-document that looks like Extended JSON's {first}"))
    docs.append({"_id": "empty-names", "": "top", "x": {"": "nested"}, "y": {"": {"": "deeper"}}})
    checks += [Check("empty-names", ("",), "top", "an empty name"),
               Check("empty-names", ("y", "", ""), "deeper", "two empty names nested")]
    docs.append({"_id": "sql", "select": 1, "from": 2, "`tick`": 3, "quote'": 4, 'dq"': 5, "back\\slash": 6,
                 "semi;--": 7, "/*c*/": 8, "%": 9, "?": 10, "NULL": 11, "primary key": 12})
    checks.append(Check("sql", ("`tick`",), 3, "backticks in a name"))
    docs.append({"_id": "digits", "123": 1, "0": 2, "-1": 3, "1e5": 4, "m": {"0": "zero", "1": "one"}})
    checks += [Check("digits", ("0",), 2, 'the name "0"'), Check("digits", ("m", "1"), "one", 'a nested "1"')]
    docs.append({"_id": "normalization", "é": "nfc", "e\u0301": "nfd", "ﬁ": "ligature", "fi": "plain"})
    checks += [Check("normalization", ("é",), "nfc", "é composed"),
               Check("normalization", ("e\u0301",), "nfd", "é decomposed")]
    docs.append({"_id": "invisible", "a\u200bb": 1, "\ufeffbom": 2, "\u202eevil": 3, " ": 4, "  lead": 5,
                 "trail  ": 6, "\u00a0nbsp": 7})
    checks.append(Check("invisible", (" ",), 4, "a single space as a name"))
    return CorpusClass("names", names.__doc__, docs, checks=checks)


def clashes(seed):
    """Field names the mapping uses for its own columns and tables (_idx1, _value, _id inside array
    elements, #key, _m2m_*, _overflow), at the top level, in sub-documents and in array elements
    beside scalar elements (which a child table keeps in its `_value` column)."""
    rng = _rng(seed, "clashes")
    docs = [
        {"_id": "top", "_idx1": 1, "_value": 2, "#key": 3, "_m2m_offsets": 4, "_overflow": 5, "#overflow": 6},
        {"_id": "element-fields", "items": [{"_idx1": "x", "_id": "z", "#value": "w"}, {"_idx2": "v"}]},
        {"_id": "value-beside-scalars", "mixed": [{"_value": "y"}, 5, "five"]},
        {"_id": "nested-ids", "sub": {"_id": 5, "x": 1}, "list": [{"_id": ObjectId(rng.randbytes(12)), "k": 1}]},
        {"_id": "nested-index", "rows": [{"cells": [{"_idx1": 0, "_idx2": 1, "v": "cell"}]}]},
    ]
    checks = [Check("top", ("_value",), 2, "a top-level field named _value"),
              Check("element-fields", ("items", 0, "_idx1"), "x", "an element field named like its index column"),
              Check("element-fields", ("items", 0, "_id"), "z", "an element's own _id beside the root key copy"),
              Check("value-beside-scalars", ("mixed", 0, "_value"), "y", "_value beside scalar elements"),
              Check("value-beside-scalars", ("mixed", 1), 5, "a scalar element beside a _value field"),
              Check("nested-index", ("rows", 0, "cells", 0, "_idx2"), 1, "_idx2 in a grandchild row")]
    return CorpusClass("clashes", clashes.__doc__, docs, checks=checks)


# ----------------------------------------------------------------------------------------------
def updates(seed):
    """Changes after the snapshot: $set/$unset of nested paths, dotted names changed by replace,
    type flips of one field across documents and over updates, replaces that shrink and grow a
    document, array operators, many updates of one document, delete and re-insert."""
    rng = _rng(seed, "updates")
    docs, ops, checks = [], [], []

    def doc(i, **extra):
        first, last, email = _person(rng)
        d = {"_id": f"u-{i:02}", "name": f"{first} {last}", "profile": {"email": email, "phone": "+351 912 345 678",
                                                                          "address": _address(rng)},
             "items": [{"sku": f"S{k}", "qty": k + 1} for k in range(3)], "tags": ["a", "b", "c"], "n": 0, **extra}
        docs.append(d)
        return d["_id"]

    def op(method, *args, **kwargs):
        ops.append(Op(method, args, kwargs))

    i = doc(0)
    op("update_one", {"_id": i}, {"$set": {"profile.address.city": "Lyon"}})
    checks.append(Check(i, ("profile", "address", "city"), "Lyon", "$set of a nested path"))
    i = doc(1)
    op("update_one", {"_id": i}, {"$unset": {"profile.address.postcode": "", "profile.phone": ""}})
    i = doc(2)
    op("update_one", {"_id": i}, {"$set": {"profile.a.b.c.d.e": "five deep"}})
    checks.append(Check(i, ("profile", "a", "b", "c", "d", "e"), "five deep", "$set below the flattening depth"))
    i = doc(3, v=1)
    for value in ["one", {"x": 1}, [1, 2], None, {"y": {"z": 1}}, True, 2.5, [{"p": 1}], 7]:
        op("update_one", {"_id": i}, {"$set": {"v": value}})
    checks.append(Check(i, ("v",), 7, "int -> string -> document -> array -> null -> ... -> int"))
    i = doc(4, **{f"extra_{k:02}": {"k": k, "list": [k, {"deep": k}]} for k in range(50)})
    op("replace_one", {"_id": i}, {"only": 1})
    checks.append(Check(i, ("only",), 1, "a replace that shrinks 54 fields to one"))
    i = doc(5, meta={"a.b": 1, "keep": True})
    op("replace_one", {"_id": i}, {"meta": {"a.b": 2, "c.d": {"e.f": 3}}})
    checks.append(Check(i, ("meta", "a.b"), 2, "a nested dotted name changed by replace_one"))
    # Top-level dotted names: the stand-in refuses them in a replace and in any update of the
    # document, so the change is a delete and an insert.
    docs.append({"_id": "u-06", "a.b": 1, "n": 1})
    op("delete_one", {"_id": "u-06"})
    op("insert_one", {"_id": "u-06", "a.b": 2, "n": 2, "c.d": {"x": 1}})
    checks.append(Check("u-06", ("a.b",), 2, "a top-level dotted name, deleted and inserted again"))
    i = doc(7)
    op("update_one", {"_id": i}, {"$set": {"loc": {"$db": "x", "$ref": "y", "$inc": 1}}})
    checks.append(Check(i, ("loc", "$db"), "x", "$set of a sub-document with $-names"))
    i = doc(8)
    op("update_one", {"_id": i}, {"$push": {"items": {"sku": "S9", "qty": 9, "new_field": "only here"}}})
    op("update_one", {"_id": i}, {"$pull": {"tags": "b"}})
    op("update_one", {"_id": i}, {"$addToSet": {"tags": "z"}})
    op("update_one", {"_id": i}, {"$pop": {"items": -1}})
    checks.append(Check(i, ("items", 2, "new_field"), "only here", "$push, then $pop of the first element"))
    i = doc(9)
    for _ in range(20):
        op("update_one", {"_id": i}, {"$inc": {"n": 1}})
    checks.append(Check(i, ("n",), 20, "twenty $inc"))
    i = doc(10, old="renamed")
    op("update_one", {"_id": i}, {"$rename": {"old": "new"}})
    checks.append(Check(i, ("new",), "renamed", "$rename"))
    i = doc(11, m={"0": "a", "1": "b"})
    op("update_one", {"_id": i}, {"$set": {"emoji😀": "set later", "m.0": "A"}})
    checks += [Check(i, ("emoji😀",), "set later", "$set of a 4-byte name"),
               Check(i, ("m", "0"), "A", '$set of "m.0" where m is a document')]
    i = doc(12, shape=[1, 2, 3])
    op("delete_one", {"_id": i})
    op("insert_one", {"_id": i, "shape": {"now": "a document"}})
    checks.append(Check(i, ("shape", "now"), "a document", "deleted, inserted again with another shape"))
    i = doc(13)
    op("update_one", {"_id": i, "items.sku": "S1"}, {"$set": {"items.$.qty": 99}})
    checks.append(Check(i, ("items", 1, "qty"), 99, "the positional $ operator"))
    i = doc(14, parts=5)
    op("update_one", {"_id": i}, {"$set": {"parts": [{"p": 1}, {"p": 2}]}})
    checks.append(Check(i, ("parts", 1, "p"), 2, "a scalar becomes an array of documents"))
    i = doc(15)
    op("update_one", {"_id": i}, {"$set": {"items": "none"}})
    checks.append(Check(i, ("items",), "none", "an array of documents becomes a string"))
    i = doc(16)
    op("update_one", {"_id": i}, {"$unset": {"name": "", "profile": "", "items": "", "tags": "", "n": ""}})
    i = doc(17)
    op("update_one", {"_id": i}, {"$set": {f"added_{k:03}": k for k in range(300)}})
    checks.append(Check(i, ("added_299",), 299, "300 fields added by one $set"))
    op("update_one", {"_id": "u-18"}, {"$setOnInsert": {"created": "by upsert"}, "$set": {"n": 1}}, upsert=True)
    checks.append(Check("u-18", ("created",), "by upsert", "an upsert"))
    i = doc(19)
    op("replace_one", {"_id": i}, {f"grown_{k:03}": f"g{k}" for k in range(500)})
    checks.append(Check(i, ("grown_499",), "g499", "a replace that grows to 500 fields"))
    for k in range(20, 24):
        doc(k)
    op("update_many", {"_id": {"$in": ["u-20", "u-21", "u-22", "u-23"]}}, {"$set": {"batch": "many"}})
    checks.append(Check("u-22", ("batch",), "many", "update_many"))
    op("delete_one", {"_id": "u-21"})
    i = doc(24, gone=1)
    op("update_one", {"_id": i}, {"$set": {"gone": None}})
    op("update_one", {"_id": i}, {"$unset": {"gone": ""}})
    i = doc(25)
    op("update_one", {"_id": i}, {"$mul": {"n": 3}, "$max": {"hi": 10}, "$min": {"lo": -10}})
    checks.append(Check(i, ("hi",), 10, "$max creating a field"))
    # One field of many types across documents.
    flips = [1, "one", {"x": 1}, [1, "a"], [{"p": 1}], None, True, _date(rng), Decimal128("1.10"), 2.5,
             Int64(2 ** 40), ObjectId(rng.randbytes(12))]
    for k, value in enumerate(flips):
        docs.append({"_id": f"flip-{k:02}", "flip": value})
    checks.append(Check("flip-01", ("flip",), "one", "a string where other documents hold other types"))
    return CorpusClass("updates", updates.__doc__, docs, ops=ops, checks=checks)


# ----------------------------------------------------------------------------------------------
def types(seed):
    """Every BSON type the stand-in stores, with its edge values: ObjectId, Decimal128 NaN and
    infinities, dates outside DATETIME's years, int32/int64 extremes, doubles, binary subtypes 0, 3
    and 4, regex, JavaScript, timestamps, MinKey/MaxKey, DBRef, nested arrays of mixed types; and
    one field holding each type in turn across documents."""
    rng = _rng(seed, "types")
    docs, checks = [], []
    oid = ObjectId(rng.randbytes(12))
    values = [("int32", 42), ("int64", Int64(2 ** 40)), ("double", 2.25), ("decimal", Decimal128("12.50")),
              ("bool", True), ("string", "héllo"), ("date", datetime.datetime(2024, 2, 29, 12, 34, 56, 789000, UTC)),
              ("objectid", oid), ("binary", Binary(b"\x00\x01\xff", 0)),
              ("uuid", Binary(bytes.fromhex("0123456789abcdef0123456789abcdef"), 4)),
              ("regex", Regex("^a.*", "i")), ("code", Code("return 1")), ("timestamp", Timestamp(1700000000, 3)),
              ("minkey", MinKey()), ("maxkey", MaxKey()), ("null", None), ("document", {"a": 1}),
              ("array", [1, "a", None])]
    for k, (label, value) in enumerate(values):
        docs.append({"_id": f"v-{k:02}-{label}", "v": value, "label": label})
    docs.append({"_id": "ints", "i32min": -2 ** 31, "i32max": 2 ** 31 - 1, "i64min": Int64(-2 ** 63),
                 "i64max": Int64(2 ** 63 - 1), "i64_2_53_plus_1": Int64(2 ** 53 + 1), "zero64": Int64(0)})
    checks += [Check("ints", ("i64max",), "9223372036854775807", "int64 max"),
               Check("ints", ("i64min",), "-9223372036854775808", "int64 min"),
               Check("ints", ("i32min",), "-2147483648", "int32 min")]
    docs.append({"_id": "doubles", "nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"), "neg_zero": -0.0,
                 "tiny": 5e-324, "huge": 1.7976931348623157e308, "tenth": 0.1, "e20": 1e20, "e_minus5": 1e-5,
                 "whole": 1.0, "third": 1 / 3})
    docs.append({"_id": "decimals", "nan": Decimal128("NaN"), "inf": Decimal128("Infinity"),
                 "ninf": Decimal128("-Infinity"), "neg_zero": Decimal128("-0"),
                 "max": Decimal128("9.999999999999999999999999999999999E+6144"),
                 "min_pos": Decimal128("1E-6176"), "digits34": Decimal128("1234567890.123456789012345678901234"),
                 "money": Decimal128("12.50"), "e40": Decimal128("1E+40"),
                 "frac31": Decimal128("0.1234567890123456789012345678901")})
    docs.append({"_id": "dates", "epoch": DatetimeMS(0), "before_1970": DatetimeMS(-1),
                 "year_1": DatetimeMS(-62135596800000), "year_999": DatetimeMS(-30641760000000),
                 "year_1000": DatetimeMS(-30610224000000), "year_9999_end": DatetimeMS(253402300799999),
                 "year_10000": DatetimeMS(253402300800000), "min": DatetimeMS(-2 ** 63), "max": DatetimeMS(2 ** 63 - 1),
                 "leap": datetime.datetime(2024, 2, 29, tzinfo=UTC)})
    docs.append({"_id": "binaries", "empty": Binary(b"", 0), "one": Binary(b"\x00", 0),
                 "blob_70000": Binary(rng.randbytes(70000), 0), "uuid_old": Binary(rng.randbytes(16), 3),
                 "uuid": Binary(bytes.fromhex("c8edabc3f4f44d7a937f6c3a7abcdefa"), 4)})
    checks.append(Check("binaries", ("uuid",), "c8edabc3-f4f4-4d7a-937f-6c3a7abcdefa", "a UUID as text"))
    docs.append({"_id": "others", "oid": oid, "re": Regex("^ab+c\\d$/x", "imsx"), "re_unicode": Regex("ü+", "u"),
                 "code": Code("function () { return 'ü'; }"), "ts0": Timestamp(0, 0),
                 "tsmax": Timestamp(4294967295, 4294967295), "lo": MinKey(), "hi": MaxKey(),
                 "ref": DBRef("customers", oid, "shop"), "ref_extra": DBRef("c", 5, extra_field="x"),
                 "nul_in_string": "a\x00b", "empty": "", "unicode": "Grüße, 世界 🌍 é́ \u200b"})
    checks += [Check("others", ("oid",), str(oid), "an ObjectId as 24 hex digits"),
               Check("others", ("nul_in_string",), "a\x00b", "a NUL inside a string value")]
    docs.append({"_id": "mixed-arrays", "a": [1, "two", 3.5, None, [Int64(4), [Decimal128("5.5")]], {"six": 6}, True,
                                              datetime.datetime(2020, 1, 1, tzinfo=UTC), oid, MinKey(), Regex("x", ""),
                                              Binary(b"\x01", 0), Timestamp(1, 1), Code("c")],
                 "matrix_of_types": [[1, "1"], [1.0, Decimal128("1")], [True, None]]})
    # Realistic: a ledger entry, a log line, a geo point.
    for i in range(6):
        docs.append({"_id": f"ledger-{i:02}", "account": f"ACC-{rng.randint(1000, 9999)}",
                     "amount": Decimal128(f"{rng.randint(-100000, 100000) / 100:.2f}"), "currency": "EUR",
                     "booked": _date(rng), "op_time": Timestamp(1700000000 + i, i), "ref": _oid(rng),
                     "memo": rng.choice(["Miete März", "Salário", "Café ☕", None])})
    for i in range(4):
        docs.append({"_id": f"log-{i:02}", "ts": _date(rng, 2024, 2025), "level": rng.choice(["INFO", "WARN", "ERROR"]),
                     "msg": "connection reset by peer", "pid": rng.randint(1, 65535), "host": f"app-{i}",
                     "trace": Binary(rng.randbytes(16), 4), "latency_ms": rng.random() * 100,
                     "loc": {"type": "Point", "coordinates": [rng.uniform(-180, 180), rng.uniform(-90, 90)]}})
    return CorpusClass("types", types.__doc__, docs, checks=checks)


# ----------------------------------------------------------------------------------------------
def ids(seed):
    """_id of every type, including values that print alike: 1 and "1", an ObjectId and its hex
    string, "NaN" and NaN, documents whose fields differ only in order, strings differing only in
    case, trailing space or Unicode normalization, and keys at and over 1,024 bytes."""
    rng = _rng(seed, "ids")
    oid = ObjectId(rng.randbytes(12))
    values = [
        ("int32 1", 1), ("string 1", "1"), ("int32 -1", -1), ("int32 0", 0), ("int64 2^40", Int64(2 ** 40)),
        ("int64 min", Int64(-2 ** 63)), ("double 1.5", 1.5), ("string 1.5", "1.5"),
        ("decimal 1.25", Decimal128("1.25")),
        ("double NaN", float("nan")), ("string NaN", "NaN"), ("double 1e20", 1e20),
        ("objectid", oid), ("objectid hex", str(oid)), ("objectid 2", ObjectId(rng.randbytes(12))),
        ("document a,b", {"a": 1, "b": "x"}), ("document b,a", {"b": "x", "a": 1}),
        ("document nested", {"k": {"z": [1, 2]}, "t": datetime.datetime(2024, 1, 1, tzinfo=UTC)}),
        ("binary", Binary(b"\x00\x01\x02", 0)), ("uuid", Binary(rng.randbytes(16), 4)),
        ("uuid old", Binary(rng.randbytes(16), 3)),
        ("date", datetime.datetime(2024, 1, 31, tzinfo=UTC)), ("date 1960", datetime.datetime(1960, 6, 1, tzinfo=UTC)),
        ("true", True), ("false", False), ("minkey", MinKey()), ("maxkey", MaxKey()),
        ("timestamp", Timestamp(1, 1)), ("null", None),
        ("empty string", ""), ("a", "a"), ("A", "A"), ("a space", "a "), ("é nfc", "é"), ("é nfd", "e\u0301"),
        ("emoji", "😀"), ("quote", "it's \"quoted\" \\"), ("string 1000", "k" * 1000),
        ("string 1024 bytes", "😀" * 256), ("url 1500", "https://example.com/?" + "q=1&" * 370),
    ]
    docs = [{"_id": v, "label": label, "n": k} for k, (label, v) in enumerate(values)]
    checks = [Check(1, ("label",), "int32 1", "_id 1 beside _id \"1\""),
              Check("1", ("label",), "string 1", "_id \"1\" beside _id 1"),
              Check(oid, ("label",), "objectid", "an ObjectId beside its hex string"),
              Check(str(oid), ("label",), "objectid hex", "the hex string beside its ObjectId"),
              Check("a ", ("label",), "a space", "a trailing space"),
              Check("e\u0301", ("label",), "é nfd", "a decomposed é")]
    return CorpusClass("ids", ids.__doc__, docs, checks=checks)


def regexids(seed):
    """_ids no range can cover (MongoDB refuses a regular expression as a $gte/$lt bound): the
    snapshot and verify read them in a chunk of their own (docs/checkpoints.md). A regex _id copied
    by the snapshot, two inserted while capture streams, beside ordinary ones. (A JavaScript _id is
    left out: the stand-in cannot match it by type, which real MongoDB does.)"""
    docs = [{"_id": k, "label": f"int {k}"} for k in range(3)] + [{"_id": Regex("^b"), "label": "regex, snapshot"}]
    ops = [Op("insert_one", ({"_id": Regex("^a", "i"), "label": "regex"},)),
           Op("insert_one", ({"_id": Regex("^a", "m"), "label": "regex, other flags"},))]
    checks = [Check(1, ("label",), "int 1", "an ordinary _id beside regex ones")]
    return CorpusClass("regexids", regexids.__doc__, docs, ops=ops, checks=checks)


# ----------------------------------------------------------------------------------------------
def orders(seed):
    """Orders with a customer, a shipping address, line items with options and discounts,
    payments and a status history; hostile: 500 line items, free-form option names, quantities and
    prices whose types vary, null and empty items, refunds, a very long note."""
    rng = _rng(seed, "orders")
    docs, checks = [], []
    statuses = ["placed", "paid", "shipped", "delivered", "returned", "cancelled"]
    option_sets = [lambda: {"color": rng.choice(["red", "blue", "preto"]), "size": rng.choice(["S", "M", "XL"])},
                   lambda: {"engraving": f"For {rng.choice(FIRST)} ❤"}, lambda: {},
                   lambda: {"Gift message (max 100 chars)": "Parabéns!", "Wrap?": True, "delivery.window": "am"}]

    def item(k):
        qty = rng.choice([rng.randint(1, 5), rng.randint(1, 5), "2", 2.5, Int64(3)])
        price = rng.choice([_money(rng), _money(rng), round(rng.uniform(1, 99), 2)])
        it = {"line": k, "sku": f"SKU-{rng.randint(1, 99999):05}",
              "name": rng.choice(["Café em grão 1kg", "USB-C cable", "Stroopwafels", "Tee 🐍"]),
              "qty": qty, "unit_price": price, "options": rng.choice(option_sets)()}
        if rng.random() < 0.3:
            it["discounts"] = [{"code": f"SAVE{rng.randint(5, 30)}", "amount": _money(rng, 1, 10)}]
        if rng.random() < 0.1:
            it["bundle"] = [{"sku": f"B-{c}", "qty": 1} for c in range(rng.randint(1, 3))]
        return it

    for i in range(60):
        first, last, email = _person(rng)
        placed = _date(rng, 2023, 2025)
        n_items = {0: 500, 1: 0}.get(i, rng.randint(1, 8))
        items = [item(k) for k in range(n_items)]
        if i == 2:
            items.insert(1, None)
        history = [{"status": s, "at": placed + datetime.timedelta(hours=h)}
                   for h, s in enumerate(statuses[:rng.randint(1, 4)])]
        doc = {"_id": _oid(rng), "number": f"SO-{placed.year}-{i:06}", "placed": placed,
               "status": history[-1]["status"],
               "customer": {"id": _oid(rng), "name": f"{first} {last}", "email": email,
                            "segment": rng.choice(["retail", "b2b", None])},
               "shipping": {"address": _address(rng), "method": rng.choice(["standard", "express", "pickup"]),
                            "cost": _money(rng, 0, 30)},
               "items": items, "payments": [{"method": rng.choice(["card", "mbway", "pix", "klarna"]),
                                             "amount": _money(rng, 5, 900), "at": placed,
                                             **({"card": {"brand": "visa", "last4": f"{rng.randint(0, 9999):04}"}}
                                                if rng.random() < 0.5 else {})}],
               "totals": {"subtotal": _money(rng, 5, 900), "tax": _money(rng, 0, 100), "total": _money(rng, 5, 1000)},
               "tags": rng.sample(["gift", "first-order", "vip", "fragile", "b2b"], rng.randint(0, 3)),
               "history": history}
        if i == 3:
            doc["totals"]["total"] = Decimal128("-42.00")
            doc["refund"] = {"reason": "damaged", "amount": Decimal128("42.00")}
        if i == 4:
            doc["note"] = "Leave at the door. " * 600
        if rng.random() < 0.2:
            doc["gift_note"] = "Feliz aniversário! 🎉"
        docs.append(doc)
    checks.append(Check(docs[0]["_id"], ("items", 499, "sku"), docs[0]["items"][499]["sku"], "the 500th line item"))
    checks.append(Check(docs[5]["_id"], ("customer", "email"), docs[5]["customer"]["email"], "a customer's e-mail"))
    checks.append(Check(docs[5]["_id"], ("number",), docs[5]["number"], "an order number"))
    return CorpusClass("orders", orders.__doc__, docs, checks=checks)


def users(seed):
    """Users with addresses, phones, roles and preferences (notification settings per channel,
    feature flags); hostile: flag names with dots, dashes and colons, 0 to 12 addresses, 200 flags
    on one user, names in other scripts."""
    rng = _rng(seed, "users")
    docs, checks = [], []
    flags = ["beta.newCheckout", "ui-dark-mode", "exp:pricing_v2", "search.v3.enabled", "Legacy Export", "ai_assist",
             "rollout/eu-west-1", "kill-switch.payments", "beta.newCheckout.v2"]
    for i in range(40):
        first, last, email = _person(rng)
        addresses = [{"type": rng.choice(["home", "work", "billing"]), **_address(rng),
                      "geo": {"type": "Point", "coordinates": [round(rng.uniform(-180, 180), 5),
                                                               round(rng.uniform(-90, 90), 5)]}}
                     for _ in range({0: 0, 1: 12}.get(i, rng.randint(1, 3)))]
        channels = {ch: {"marketing": rng.random() < 0.3, "security": True, "digest": rng.choice(["daily", "weekly"])}
                    for ch in rng.sample(["email", "sms", "push", "whatsapp", "slack"], rng.randint(1, 4))}
        features = {f: rng.random() < 0.5 for f in rng.sample(flags, rng.randint(0, len(flags)))}
        if i == 2:
            features.update({f"flag_{k:03}.rollout": k % 2 == 0 for k in range(200)})
        doc = {"_id": f"user-{i:04}", "email": email, "name": {"first": first, "last": last,
                                                              **({"display": "محمد 🇵🇹"} if i == 5 else {})},
               "addresses": addresses, "phones": [f"+{rng.randint(1, 99)} {rng.randint(10**7, 10**9)}"
                                                  for _ in range(rng.randint(0, 2))],
               "roles": rng.sample(["admin", "editor", "viewer", "billing"], rng.randint(1, 2)),
               "preferences": {"language": rng.choice(["en-US", "pt_BR", "de"]), "currency": rng.choice(["EUR", "BRL"]),
                               "theme": rng.choice(["light", "dark", None]), "notifications": channels,
                               "features": features},
               "created": _date(rng, 2015, 2024), "last_login": rng.choice([_date(rng, 2024, 2025), None])}
        docs.append(doc)
    checks.append(Check("user-0001", ("addresses", 11, "city"), docs[1]["addresses"][11]["city"], "the 12th address"))
    checks.append(Check("user-0002", ("preferences", "features", "flag_199.rollout"), False,
                        "the 200th feature flag, a dotted name"))
    return CorpusClass("users", users.__doc__, docs, checks=checks)


def events(seed):
    """Analytics events with a context and a free-form attribute bag: hundreds of property names
    across the collection (tracking plans, UTM parameters, user-defined properties with spaces,
    dots, $ and emoji), each name's value type varying from event to event."""
    rng = _rng(seed, "events")
    docs, checks = [], []
    base = ["utm_source", "utm_medium", "utm_campaign", "cart.total", "Button Label", "$revenue", "$currency",
            "experiment:checkout_v2", "x-forwarded-for", "page title", "Plan (monthly)", "referrer.host", "😀 reaction",
            "items[0].sku", "search query", "error.code", "error.stack", "duration_ms", "is_first_visit", "a/b bucket"]
    pool = base + [f"custom_prop_{k}" for k in range(300)] + [f"{w} {k}" for w in ("Custom", "Prop", "Trait")
                                                               for k in range(100)]
    kinds = ["page_view", "click", "purchase", "signup", "error"]
    for i in range(50):
        attrs = {}
        for name in rng.sample(pool, rng.randint(5, 40)):
            attrs[name] = rng.choice([rng.randint(0, 1000), f"v{rng.randint(0, 99)}", rng.random() < 0.5,
                                      round(rng.uniform(0, 500), 2), [rng.randint(0, 9) for _ in range(3)],
                                      {"nested": rng.randint(0, 9)}, None])
        doc = {"_id": _oid(rng), "type": rng.choice(kinds), "ts": _date(rng, 2024, 2025),
               "user_id": f"user-{rng.randint(0, 39):04}", "session": _uuid(rng),
               "context": {"ip": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                                                  "ua": "Mozilla/5.0", "locale": rng.choice(["en-US", "pt_BR"]),
                                                  "page": {"url": f"https://shop.example/p/{i}", "referrer": None}},
               "attrs": attrs}
        docs.append(doc)
    docs[0]["attrs"]["Button Label"] = "Buy now"
    checks.append(Check(docs[0]["_id"], ("attrs", "Button Label"), "Buy now", "a property name with a space"))
    docs[1]["attrs"]["$revenue"] = "19.99"
    checks.append(Check(docs[1]["_id"], ("attrs", "$revenue"), "19.99", "a $-property"))
    return CorpusClass("events", events.__doc__, docs, checks=checks)


# ----------------------------------------------------------------------------------------------
def large(seed):
    """Large documents: a string of about 15 MB, a binary of about 8 MB, and an update of the
    first (the event carries the whole document again). Slow: a test of its own."""
    rng = _rng(seed, "large")
    text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz 0123456789") for _ in range(100000))
    big = (text * 150)[:15 * 1024 * 1024]
    docs = [{"_id": "big-string", "title": "15 MB of text", "body": big},
            {"_id": "big-binary", "title": "8 MB of bytes", "payload": Binary(rng.randbytes(8 * 1024 * 1024), 0)}]
    ops = [Op("update_one", ({"_id": "big-string"}, {"$set": {"title": "updated"}}))]
    checks = [Check("big-string", ("title",), "updated", "an update of a 15 MB document")]
    return CorpusClass("large", large.__doc__, docs, ops=ops, checks=checks, slow=True)


BUILDERS = [maps, deep, arrays, wide, names, clashes, updates, types, ids, regexids, orders, users, events, large]
