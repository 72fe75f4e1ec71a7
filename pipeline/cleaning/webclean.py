"""Web cleaning: the documents of a crawl, read and extracted, lose boilerplate lines, low-quality pages,
blocked sites and personal data. Every rule is named, counted and switchable (`webclean.*`); all are off
by default (plain text has no use for them) and on in the `web` preset.

They run after reading and before normalizing, in this order:
1. URL block list (`blocked`: a file with one URL or domain a line, `#` comments): a document whose URL
   is listed, or whose host is a listed domain or below one, is dropped as "url/blocked".
2. FineWeb's page rules (Penedo et al. 2024), on the non-blank lines of the text as extracted, each
   dropping the document as "web/<rule>": `line_punct_ratio` (the fraction of lines ending in terminal
   punctuation is at most this), `short_line_ratio` (the fraction of lines of at most `short_line_chars`
   characters is at least this), `dup_line_chars` (characters in lines that repeat an earlier line, of
   all characters, above this). 0 turns a rule off.
3. C4's line rules (Raffel et al. 2020): a line is removed when it does not end in terminal punctuation
   (`terminal_punct`), has fewer than `min_words_per_line` words, mentions `javascript`, or is a
   `policy` line (terms of use, privacy or cookie policy, uses cookies); stats.json counts the removed
   lines under "web" as "lines/<rule>" (the first rule that removes the line). Then C4's page rules drop
   a document that holds `lorem_ipsum` or a curly brace (`curly_brace`, code) as "web/<rule>", and one
   with no line left as "web/no_lines".
4. PII redaction (`pii`): e-mail addresses become `[EMAIL]`, IPv4 and IPv6 addresses `[IP]`, phone
   numbers (international `+` numbers, (NNN) NNN-NNNN and the like; not bare digit runs, dates or
   years) `[PHONE]`; stats.json counts each kind under "web" as "pii/<kind>".
"""

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from configs import setting

TERMINAL = (".", "!", "?", '"', "'", "\u201d", "\u2019", "\u2026", "\u3002", "\uff01", "\uff1f")
POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
PLACEHOLDERS = {"email": "[EMAIL]", "ip": "[IP]", "phone": "[PHONE]"}

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_H = r"[0-9A-Fa-f]{1,4}"
PII = {
    "email": re.compile(r"(?<![\w.+-])[\w.+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}\b"),
    "ip": re.compile(rf"(?<![\w.:])(?:{_OCTET}\.){{3}}{_OCTET}(?![\w.]*\d)"
                     rf"|(?<![\w:])(?:(?:{_H}:){{7}}{_H}|(?:{_H}:){{1,6}}(?::{_H}){{1,6}}|(?:{_H}:){{1,7}}:|::{_H}(?::{_H}){{0,6}})"
                     r"(?![\w:])"),
    "phone": re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){2,4}"
                        r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![\w-])"),
}


@dataclass(frozen=True)
class WebCleanConfig:
    """`webclean.*` in the corpus config; 0 or false turns a rule off."""

    blocked: str | None = setting("a file of blocked URLs and domains, one a line (local or on storage); "
                                  "null: none", None)
    line_punct_ratio: float = setting("drop a page whose share of lines ending in terminal punctuation is at "
                                      "most this (FineWeb: 0.12)", 0.0)
    short_line_ratio: float = setting("drop a page whose share of short lines (short_line_chars) is at least "
                                      "this (FineWeb: 0.67)", 0.0)
    short_line_chars: int = setting("a line of at most this many characters is short (short_line_ratio)", 30)
    dup_line_chars: float = setting("drop a page whose characters in repeated lines are above this share of "
                                    "all (FineWeb: 0.01)", 0.0)
    terminal_punct: bool = setting("remove lines that do not end in terminal punctuation (C4)", False)
    min_words_per_line: int = setting("remove lines of fewer words (C4: 3)", 0)
    javascript: bool = setting("remove lines that mention javascript (C4)", False)
    policy: bool = setting("remove terms-of-use, privacy and cookie policy lines (C4)", False)
    lorem_ipsum: bool = setting("drop pages that hold lorem ipsum (C4)", False)
    curly_brace: bool = setting("drop pages that hold a curly brace: code (C4)", False)
    pii: bool = setting("redact e-mail addresses, IP addresses and phone numbers as [EMAIL], [IP], [PHONE]",
                        False)

    def __post_init__(self):
        for field in ("line_punct_ratio", "short_line_ratio", "dup_line_chars"):
            if not 0 <= getattr(self, field) <= 1:
                raise ValueError(f"webclean.{field}={getattr(self, field)!r}: must be a fraction in [0, 1]")
        if self.short_line_chars < 1 or self.min_words_per_line < 0:
            raise ValueError("webclean.short_line_chars must be >= 1 and webclean.min_words_per_line >= 0")

    @property
    def active(self) -> bool:
        return any(getattr(self, f) for f in self.__dataclass_fields__ if f != "short_line_chars")


# ---- pure rules --------------------------------------------------------------------------------

def read_blocklist(text: str) -> tuple[frozenset, frozenset]:
    """(URLs, domains) of a block-list file: an entry with "://" is a URL, else a domain."""
    urls, domains = set(), set()
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if "://" in entry:
            urls.add(entry.rstrip("/"))
        elif entry:
            domains.add(entry.lower().strip(".").removeprefix("www."))
    return frozenset(urls), frozenset(domains)


def blocked(url: str, urls: frozenset, domains: frozenset) -> bool:
    if not url:
        return False
    if url.split("#", 1)[0].rstrip("/") in urls:
        return True
    host = (urlsplit(url).hostname or "").strip(".")
    parts = host.split(".")
    return any(".".join(parts[i:]) in domains for i in range(len(parts)))


def fineweb_rule(text: str, cfg: WebCleanConfig) -> str | None:
    """The first FineWeb page rule that drops the text, or None."""
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    if not lines:
        return None
    if cfg.line_punct_ratio and sum(ln.endswith(TERMINAL) for ln in lines) / len(lines) <= cfg.line_punct_ratio:
        return "line_punct_ratio"
    if cfg.short_line_ratio and (sum(len(ln) <= cfg.short_line_chars for ln in lines) / len(lines)
                                 >= cfg.short_line_ratio):
        return "short_line_ratio"
    if cfg.dup_line_chars:
        seen, dup = set(), 0
        for ln in lines:
            if ln in seen:
                dup += len(ln)
            seen.add(ln)
        if dup / sum(map(len, lines)) > cfg.dup_line_chars:
            return "dup_line_chars"
    return None


def line_rule(line: str, cfg: WebCleanConfig) -> str | None:
    """The first C4 line rule that removes the (stripped) line, or None."""
    if cfg.terminal_punct and not line.endswith(TERMINAL):
        return "terminal_punct"
    if cfg.min_words_per_line and len(line.split()) < cfg.min_words_per_line:
        return "min_words_per_line"
    lower = line.lower()
    if cfg.javascript and "javascript" in lower:
        return "javascript"
    if cfg.policy and any(p in lower for p in POLICY):
        return "policy"
    return None


def redact(text: str) -> tuple[str, dict]:
    """Text with e-mails, IPs and phone numbers replaced by PLACEHOLDERS, and {kind: count}."""
    counts = {}
    for kind, pattern in PII.items():
        text, n = pattern.subn(PLACEHOLDERS[kind], text)
        if n:
            counts[kind] = n
    return text, counts


# ---- a batch of documents ----------------------------------------------------------------------

class WebClean:
    """`apply(docs, tally)` -> the kept documents, cleaned; drops and counts go to the Tally."""

    def __init__(self, cfg: WebCleanConfig):
        self.cfg = cfg
        self.urls = self.domains = frozenset()
        if cfg.blocked:
            from pipeline.files import storage

            self.urls, self.domains = read_blocklist(storage.read_text(cfg.blocked))
        self.lines = cfg.terminal_punct or cfg.min_words_per_line or cfg.javascript or cfg.policy

    def apply(self, docs: list, tally) -> list:
        kept = []
        for doc in docs:
            text, reason = self._clean(doc, tally)
            if reason:
                tally.drop(reason, len(doc.text))
            else:
                kept.append(doc._replace(text=text) if text is not doc.text else doc)
        return kept

    def _clean(self, doc, tally) -> tuple[str, str | None]:
        cfg, text = self.cfg, doc.text
        if (self.urls or self.domains) and blocked(doc.url, self.urls, self.domains):
            return text, "url/blocked"
        reason = fineweb_rule(text, cfg)
        if reason:
            return text, f"web/{reason}"
        if self.lines:
            out = []
            for line in text.split("\n"):
                rule = line_rule(line.strip(), cfg) if line.strip() else None
                if rule:
                    tally.count(f"web/lines/{rule}")
                else:
                    out.append(line)
            text = "\n".join(out)
            if not text.strip():
                return text, "web/no_lines"
        if cfg.lorem_ipsum and "lorem ipsum" in text.lower():
            return text, "web/lorem_ipsum"
        if cfg.curly_brace and "{" in text:
            return text, "web/curly_brace"
        if cfg.pii:
            text, counts = redact(text)
            for kind, n in counts.items():
                tally.count(f"web/pii/{kind}", n)
        return text, None
