"""A labelled evaluation set for the document-kind classifier, built from text available on this machine.

Labels come from where a text is from, assigned by hand per source (never from the classifier):

| kind | documents from |
|---|---|
| book | chapters of *Pride and Prejudice* (``1342-0.txt``), 4 KB passages of Shakespeare's plays (tinyshakespeare) |
| paper | 5 KB sections of the 20 arXiv LaTeX papers, the RedPajama arXiv pieces, NIH grant abstracts, USPTO patent backgrounds |
| encyclopedia | reference text: Python's language reference topics (``pydoc_data``), scikit-learn's data-set descriptions, Debian READMEs |
| code | Python standard-library modules, single functions or classes of other modules, CPython's C headers |
| news | ``pretrain_kinds/news.txt`` (written for this set) and the news articles among the web samples (listed below) |
| forum | ``pretrain_kinds/forum.txt`` (written for this set), the StackExchange sample, a forum page among the C4 samples |
| web | every other C4, CCNet, Common Crawl and raw-crawl page of ``../shared/data``, and a few junk pages made here |

``build(shared_data)`` returns a list of ``(kind, group, text)``; ``group`` names the book, paper, file or
page a document came from, so cross-validation never splits one source's pieces between train and test.
The shared-data files are read in place and never copied.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAX_CHARS = 8000
# shorter texts are dropped by every kind's rules (Gopher's min_doc_words = 50), so their kind never matters
MIN_WORDS = 50

# web-sample pages that are not generic web pages, by the start of their text (hand-labelled)
_WEB_OVERRIDES = {
    "The woman who died after falling from a bridge": "news",
    "The sport of Bocce Ball is alive and well": "news",
    "A month ago, India had commissioned": "news",
    "The Arlington County Board plans to vote": "news",
    "Russia to renew kangaroo meat imports": "news",
    "France thwarts possible attack": "news",
    "Learning Disability Super League Launched": "news",
    "How many backlinks per day for new site?": "forum",
    # ambiguous pages left out: a county-history biography, a blog page made mostly of comments
    "CHARLES H. MEISNER": None,
    "View from Doubletree Hotel": None,
}


def _jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _blocks(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    text = "\n".join(line for line in text.splitlines() if not line.startswith("# "))
    return [block.strip() for block in text.split("\n=====\n") if block.strip()]


def _windows(text: str, size: int, limit: int) -> list[str]:
    """Up to ``limit`` consecutive pieces of about ``size`` characters, cut at line ends."""
    pieces, start = [], 0
    while start < len(text) and len(pieces) < limit:
        end = text.find("\n", start + size)
        end = len(text) if end < 0 else end
        piece = text[start:end].strip()
        if len(piece) > size // 4:
            pieces.append(piece)
        start = end + 1
    return pieces


def _junk(rng: random.Random) -> list[str]:
    lorem = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et "
             "dolore magna aliqua").split()
    menu = ["Home", "About us", "Products", "Contact", "Login", "Cart (0)", "FAQ", "Privacy policy", "Terms",
            "Sitemap", "Careers", "Blog", "Shop now", "Gift cards", "Newsletter", "Follow us", "Search"]
    docs = []
    for i in range(4):
        docs.append(" ".join(rng.choice(lorem) for _ in range(300)).capitalize() + ".")
        docs.append("\n".join(rng.sample(menu, len(menu))) + "\n© 2019 All rights reserved | " + " | ".join(menu[:6]))
        docs.append(" ".join("".join(rng.choice("#@%$&*+=~^<>|0123456789abcdef") for _ in range(rng.randint(2, 9)))
                             for _ in range(250)))
    return docs


def build(shared_data: Path, seed: int = 0) -> list[tuple[str, str, str]]:
    """``(kind, group, text)`` for every document of the set (see module docstring)."""
    rng = random.Random(seed)
    docs: list[tuple[str, str, str]] = []

    def add(kind: str, group: str, text: str) -> None:
        text = text.strip()
        if len(text.split()) >= MIN_WORDS:
            docs.append((kind, group, text[:MAX_CHARS]))

    # books
    book = (shared_data / "gutenberg_pride_and_prejudice" / "1342-0.txt").read_text(encoding="utf-8")
    chapters = re.split(r"\n\s*Chapter \d+\s*\n", book)[1:]
    for i, chapter in enumerate(chapters):
        add("book", f"pride-and-prejudice#{i}", chapter)
    plays = (shared_data / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    for i, piece in enumerate(_windows(plays, 4000, 400)[::12]):
        add("book", f"shakespeare#{i}", piece)

    # papers
    for i, row in enumerate(_jsonl(shared_data / "instruct_and_arxiv" / "arxiv.jsonl")):
        for j, piece in enumerate(_windows(row["text"], 5000, 3)):
            add("paper", f"arxiv#{i}", piece)
    mix = shared_data / "web_samples" / "data_juicer_mixture"
    for name in ("redpajama-arxiv-sample", "the-pile-nih-refined", "the-pile-uspto-refined"):
        for i, row in enumerate(_jsonl(mix / f"{name}.jsonl")):
            if len(row["text"]) >= 500:
                add("paper", f"{name}#{i}", row["text"])

    # reference text
    import pydoc_data.topics

    for name, text in sorted(pydoc_data.topics.topics.items()):
        if len(text) >= 800:
            add("encyclopedia", f"pydoc:{name}", text)
    try:
        import sklearn.datasets

        descr = Path(sklearn.datasets.__file__).parent / "descr"
        for path in sorted(descr.glob("*.rst")):
            add("encyclopedia", f"sklearn:{path.stem}", path.read_text(encoding="utf-8"))
    except ImportError:
        pass
    readmes = []
    for path in sorted(Path("/usr/share/doc").glob("*/README*")):
        try:
            raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if len(text) >= 1500:
            readmes.append((path, text))
    for path, text in readmes[:: max(1, len(readmes) // 15)][:15]:
        add("encyclopedia", f"debian:{path.parent.name}", text)

    # code
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    modules = sorted(p for p in stdlib.glob("*.py") if p.stat().st_size > 3000)
    for path in modules[:: max(1, len(modules) // 45)][:45]:
        add("code", f"py:{path.name}", path.read_text(encoding="utf-8", errors="replace"))
    # single functions and classes (short code, often mostly docstring) from modules not used whole above
    used = set(modules[:: max(1, len(modules) // 45)][:45])
    snippets = []
    for path in modules:
        if path in used:
            continue
        source = path.read_text(encoding="utf-8", errors="replace")
        for match in re.finditer(r"^(?:def|class) \w+.*?(?=^\S)", source, re.MULTILINE | re.DOTALL):
            if 50 <= len(match.group(0).split()) <= 600:
                snippets.append((path.stem, match.group(0)))
                break
    for module, snippet in snippets[:: max(1, len(snippets) // 30)][:30]:
        add("code", f"pyfunc:{module}", snippet)
    headers = sorted(Path(sysconfig.get_paths()["include"]).glob("*.h"))
    headers = [p for p in headers if p.stat().st_size > 1500]
    for path in headers[:: max(1, len(headers) // 20)][:20]:
        add("code", f"h:{path.name}", path.read_text(encoding="utf-8", errors="replace"))

    # news and forum threads written for this set
    for i, text in enumerate(_blocks(HERE / "pretrain_kinds" / "news.txt")):
        add("news", f"news#{i}", text)
    for i, text in enumerate(_blocks(HERE / "pretrain_kinds" / "forum.txt")):
        add("forum", f"forum#{i}", text)
    for i, row in enumerate(_jsonl(mix / "redpajama-pile-stackexchange-refined.jsonl")):
        add("forum", f"stackexchange#{i}", row["text"])

    # web pages (with the hand-labelled exceptions)
    web_files = [mix / "redpajama-c4-refined.jsonl", mix / "redpajama-cc-2023-06-refined.jsonl",
                 *sorted((shared_data / "web_samples" / "dolma").glob("*.json*")),
                 *sorted((shared_data / "web_samples" / "olmo_c4").glob("*.json.gz"))]
    for path in web_files:
        for i, row in enumerate(_jsonl(path)):
            text = row["text"]
            kind = "web"
            for prefix, label in _WEB_OVERRIDES.items():
                if text.startswith(prefix):
                    kind = label
            if kind is not None:
                add(kind, f"{path.name}#{i}", text)
    for i, text in enumerate(_junk(rng)):
        add("web", f"junk#{i}", text)
    return docs
