"""Deterministic planted evaluation sets for the SFT curation tests and benchmarks.

Rewrites are rule-based (no model): synonym substitution from a fixed table, clause reordering
(the final question moved to the front) and number substitution. Each builder takes a
``random.Random`` so a set is reproducible from its seed; the ground truth (which item is a
rewrite of which) is known by construction, never read back from the code under test.
"""

from __future__ import annotations

import random
import re

SYNONYMS = {
    "has": "owns", "have": "own", "buys": "purchases", "bought": "purchased", "buy": "purchase", "sells": "vends",
    "sold": "vended", "sell": "vend", "gives": "hands", "gave": "handed", "give": "hand", "takes": "needs",
    "take": "need", "makes": "produces", "made": "produced", "make": "produce", "spends": "pays out", "spent": "paid out",
    "spend": "pay out", "earns": "gets paid", "earn": "get paid", "wants": "would like", "needs": "requires",
    "need": "require", "gets": "receives", "get": "receive", "went": "traveled", "goes": "travels", "eats": "consumes",
    "ate": "consumed", "eat": "consume", "uses": "utilizes", "used": "utilized", "use": "utilize", "decides": "chooses",
    "decided": "chose", "works": "labors", "walk": "stroll", "run": "jog", "save": "keep", "pay": "shell out",
    "paid": "shelled out", "cost": "price", "costs": "is priced at", "price": "cost", "money": "cash", "dollars": "bucks",
    "store": "shop", "school": "academy", "students": "pupils", "friends": "pals", "friend": "pal", "children": "kids",
    "child": "kid", "girls": "young women", "house": "home", "car": "automobile", "cars": "automobiles",
    "bag": "sack", "bags": "sacks", "box": "carton", "boxes": "cartons", "book": "volume", "books": "volumes",
    "teacher": "instructor", "family": "household", "team": "squad", "trip": "journey", "pieces": "bits",
    "each": "every single", "every": "each", "total": "overall", "remaining": "left over", "together": "combined",
    "combined": "altogether", "also": "additionally", "then": "afterwards", "now": "currently", "already": "previously",
    "different": "distinct", "large": "big", "small": "little", "long": "lengthy", "new": "fresh",
    "how many": "what number of", "how much": "what amount of", "rest": "remainder", "amount": "quantity",
    "number": "count", "calculate": "compute", "find": "determine", "average": "mean", "rate": "pace",
    "speed": "velocity", "company": "firm", "food": "meals", "work": "job", "weight": "mass", "weighs": "has a mass of",
    "party": "celebration", "plants": "shrubs", "tree": "plant", "trees": "plants", "dog": "pup", "dogs": "pups",
    "toys": "playthings", "candy": "sweets", "apples": "fruits", "cookies": "biscuits", "shoes": "sneakers",
    "describe": "explain", "explain": "describe", "write": "compose", "list": "enumerate", "give me": "provide",
    "tell me": "let me know", "what is": "what's", "why": "for what reason", "good": "nice", "important": "significant",
    "famous": "well-known", "people": "folks", "city": "town", "country": "nation", "popular": "well-liked",
    "help": "assist", "start": "begin", "show": "display", "create": "make", "difference": "distinction",
    "benefits": "advantages", "ways": "methods", "ideas": "suggestions", "best": "finest", "story": "tale",
    "about": "regarding", "some": "a few", "think": "believe", "know": "understand", "should": "ought to",
}
_SYN_PATTERN = re.compile(r"\b(" + "|".join(sorted(map(re.escape, SYNONYMS), key=len, reverse=True)) + r")\b", re.I)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def substitute_synonyms(text: str, fraction: float, rng: random.Random) -> str:
    """Replace a ``fraction`` of the table words found in ``text`` by their synonyms."""
    def swap(match: re.Match) -> str:
        if rng.random() >= fraction:
            return match.group(0)
        word = SYNONYMS[match.group(0).lower()]
        return word.capitalize() if match.group(0)[0].isupper() else word
    return _SYN_PATTERN.sub(swap, text)


def change_numbers(text: str, rng: random.Random) -> str:
    """Every number replaced by a different one of similar size."""
    def swap(match: re.Match) -> str:
        value = float(match.group(0))
        new = value + rng.randint(1, 9) if value < 20 else value * rng.choice([2, 3]) + rng.randint(1, 9)
        return str(int(new)) if "." not in match.group(0) else f"{new:.2f}"
    return _NUMBER.sub(swap, text)


def reorder_clauses(text: str) -> str:
    """Sentences rotated so the last one (usually the question) comes first; long single sentences split at a comma."""
    sentences = [s for s in re.split(r"(?<=[.?!])\s+", text.strip()) if s]
    if len(sentences) >= 2:
        return " ".join([sentences[-1]] + sentences[:-1])
    parts = text.split(", ", 1)
    return f"{parts[1].rstrip('.?!')}, {parts[0][0].lower()}{parts[0][1:]}." if len(parts) == 2 else text


def rewrite(text: str, level: str, rng: random.Random) -> str:
    """One planted rewrite of an evaluation question at ``level``."""
    if level == "verbatim":
        return text
    if level == "numbers":
        return change_numbers(text, rng)
    if level == "light":
        return substitute_synonyms(text, 0.3, rng)
    if level == "heavy":
        return reorder_clauses(change_numbers(substitute_synonyms(text, 0.9, rng), rng))
    raise ValueError(level)


LEVELS = ("verbatim", "numbers", "light", "heavy")


def word_set(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def word_jaccard(a: str, b: str) -> float:
    sa, sb = word_set(a), word_set(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else 0.0


_KEEP = set("""not no never max min over under more less before after first last""".split())


def edit_to_jaccard(text: str, target: float, rng: random.Random) -> str | None:
    """A near-duplicate of ``text`` with word Jaccard in ``(target − 0.05, target]``: synonyms, else a word deleted.

    Numbers, comparison words and negations are never touched (the edit must not change the task).
    Returns ``None`` when the text cannot reach the band.
    """
    tokens = text.split()
    order = list(range(len(tokens)))
    rng.shuffle(order)
    edited = list(tokens)
    for position in order:
        if word_jaccard(text, " ".join(t for t in edited if t)) <= target:
            break
        token = edited[position]
        bare = re.sub(r"\W", "", token).lower()
        if not bare or bare in _KEEP or any(c.isdigit() for c in bare):
            continue
        if bare in SYNONYMS and len(SYNONYMS[bare].split()) == 1:
            edited[position] = token.lower().replace(bare, SYNONYMS[bare])
        elif sum(1 for t in tokens if re.sub(r"\W", "", t).lower() == bare) == 1:
            edited[position] = ""  # delete a word that occurs once
    out = " ".join(t for t in edited if t)
    similarity = word_jaccard(text, out)
    return out if target - 0.05 < similarity <= target else None


# Templated prompts: pairs that differ in one or two words that change the task.
TEMPLATED_PAIRS = [
    ("Write a Python function that returns the maximum value in a list of integers.",
     "Write a Python function that returns the minimum value in a list of integers."),
    ("Write a SQL query that selects all customers whose age is over 30 from the customers table.",
     "Write a SQL query that selects all customers whose age is under 30 from the customers table."),
    ("Sort the following list of numbers in ascending order and print the result.",
     "Sort the following list of numbers in descending order and print the result."),
    ("List three reasons why regular exercise is good for mental health.",
     "List five reasons why regular exercise is good for mental health."),
    ("Explain why the sky is blue during the day.", "Explain why the sky is not blue during the day."),
    ("Write a function that checks whether a number is even and returns a boolean.",
     "Write a function that checks whether a number is odd and returns a boolean."),
    ("Summarize the article below in 50 words for a general audience.",
     "Summarize the article below in 200 words for a general audience."),
    ("Translate the sentence into French and keep the formal tone of the original text.",
     "Translate the sentence into French and do not keep the formal tone of the original text."),
    ("Find the largest prime number smaller than 100 and explain your reasoning.",
     "Find the smallest prime number larger than 100 and explain your reasoning."),
    ("Describe what happened in Europe before the First World War started.",
     "Describe what happened in Europe after the First World War started."),
    ("Write a regular expression that matches strings with at least 8 characters.",
     "Write a regular expression that matches strings with at most 8 characters."),
    ("Give me a recipe for a cake that contains eggs and milk.",
     "Give me a recipe for a cake without eggs and milk."),
    ("Compute the sum of the first 10 positive integers and show your work.",
     "Compute the product of the first 10 positive integers and show your work."),
    ("Write a bash command that lists files modified in the last 7 days in the current directory.",
     "Write a bash command that lists files modified in the last 30 days in the current directory."),
    ("Rewrite the paragraph so it is shorter and easier for children to read.",
     "Rewrite the paragraph so it is longer and easier for children to read."),
    ("Name the highest mountain in Africa and the country where it is located.",
     "Name the lowest point in Africa and the country where it is located."),
    ("Write an email to my manager asking for a day off on Friday next week.",
     "Write an email to my manager asking for a day off on Monday next week."),
    ("Convert 25 degrees Celsius to Fahrenheit and explain the formula you used.",
     "Convert 25 degrees Fahrenheit to Celsius and explain the formula you used."),
    ("Write a function that removes duplicates from a list and keeps the original order.",
     "Write a function that removes duplicates from a list and does not keep the original order."),
    ("Suggest a good name for a coffee shop that opens early in the morning.",
     "Suggest a good name for a coffee shop that opens late in the evening."),
]
