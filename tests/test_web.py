"""Web input and web cleaning: real WARC/WET files (../shared/data/web, skipped when absent) and small WARC
and HTML files written here (WARC 1.0 `<uri>` targets, a 404, a PDF, a cut-off record, a cp1251 page that
declares its charset only in <meta>), read into documents with URLs and counted drops; every cleaning rule
and the PII placeholders on lines from real pages (JavaScript, lorem ipsum and curly-brace lines are
written: the shared pages hold none); the pipeline end to end with the `web` cleaning on, and
url and date in JSON Lines and Parquet output."""

import gzip
import json

import brotli
import pyarrow.parquet as pq
import pytest
import zstandard
from conftest import SHARED
from test_corpus_cli import docs_of, run

from pipeline import config
from pipeline.cleaning import webclean
from pipeline.document import Doc, Drop
from pipeline.graph.stats import Tally
from pipeline.reading import inputs, sources

WEB = SHARED / "web"
MARKUP = ("<div", "<script", "<p>", "<span", "<a href", "</")
ARTICLE = ("<!DOCTYPE html><html><head><title>{title}</title>{meta}</head><body><nav><a href='/'>Home</a> | "
           "<a href='/about'>About</a></nav><article><h1>{title}</h1>{paras}</article>"
           "<footer>Copyright 2024. All rights reserved. <a href='/privacy'>Privacy policy</a></footer>"
           "<script>var x = 1;</script></body></html>")


def read(path, **web):
    cfg = config.load(None, [f"web.{k}={v}" for k, v in web.items()])
    found = inputs.expand([str(path)])
    reader = sources.Reader(cfg.source, cfg.web)
    out = [x for u in found.units for x in reader.read(u)]
    return [d for d in out if isinstance(d, Doc)], [d for d in out if isinstance(d, Drop)], reader.files


def page(title: str, paras: list[str], meta: str = "") -> str:
    return ARTICLE.format(title=title, meta=meta, paras="".join(f"<p>{p}</p>" for p in paras))


def record(kind: str, uri: str, block: bytes, version: str = "1.0", length: int | None = None) -> bytes:
    head = (f"WARC/{version}\r\nWARC-Type: {kind}\r\nWARC-Target-URI: {uri}\r\nWARC-Date: 2024-05-18T01:58:10Z\r\n"
            f"WARC-Record-ID: <urn:uuid:{abs(hash((uri, kind))):032x}>\r\n"
            f"Content-Type: application/http; msgtype={kind}\r\nContent-Length: {len(block) if length is None else length}"
            "\r\n\r\n")
    return head.encode() + block + b"\r\n\r\n"


def http(status: str, ctype: str, body: bytes) -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


PROSE = ["The river rose for three days before the town council met to decide what should be done about the "
         "old bridge, which had stood since the war.",
         "Engineers who inspected it said that the stone piers were sound, but that the wooden deck would not "
         "survive another spring flood of the same height.",
         "After a long debate the council voted to close the bridge to lorries and to ask the county for money "
         "to replace the deck before the end of the year."]
RUSSIAN = ["Совет города собрался в понедельник, чтобы обсудить ремонт старого моста через реку.",
           "Инженеры сказали, что каменные опоры крепкие, но деревянный настил не переживёт ещё одного паводка.",
           "После долгого обсуждения совет решил закрыть мост для грузовиков до конца года."]


def small_warc(gz: bool) -> bytes:
    """Six records: a request, a 200 HTML page (WARC 1.0 `<uri>`), a 404, a PDF, a cp1251 page that
    declares its charset only in <meta> (WARC 1.1), and a response cut off before its Content-Length."""
    cp1251 = page("Мост", RUSSIAN, '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">')
    recs = [
        record("request", "<https://news.example.org/bridge>", b"GET /bridge HTTP/1.1\r\nHost: news.example.org\r\n\r\n"),
        record("response", "<https://news.example.org/bridge>", http("200 OK", "text/html", page("Bridge", PROSE).encode())),
        record("response", "<https://news.example.org/gone>", http("404 Not Found", "text/html", page("Gone", PROSE[:1]).encode())),
        record("response", "<https://news.example.org/report.pdf>", http("200 OK", "application/pdf", b"%PDF-1.4\n%\xe2\xe3\n1 0 obj")),
        record("response", "https://ru.example.org/most", http("200 OK", "text/html", cp1251.encode("cp1251")), "1.1"),
    ]
    cut = record("response", "https://news.example.org/cut", http("200 OK", "text/html", page("Cut", PROSE).encode()))
    recs.append(cut[: len(cut) // 2])
    return b"".join(gzip.compress(r) for r in recs) if gz else b"".join(recs)


@pytest.mark.parametrize("gz", [False, True])
def test_written_warc_documents_urls_and_drops(tmp_path, gz):
    path = tmp_path / ("crawl.warc.gz" if gz else "crawl.warc")
    path.write_bytes(small_warc(gz))
    docs, drops, files = read(path)
    assert [d.url for d in docs] == ["https://news.example.org/bridge", "https://ru.example.org/most"]
    assert all(d.date == "2024-05-18T01:58:10Z" and d.name.startswith("warc:crawl.warc") for d in docs)
    assert "wooden deck would not survive" in docs[0].text and "var x" not in docs[0].text
    assert "деревянный настил" in docs[1].text  # decoded by the charset its <meta> declares
    assert not any(m in d.text for d in docs for m in MARKUP)
    assert sorted(d.reason for d in drops) == ["read/http_status", "read/not_html", "read/truncated",
                                               "read/warc_request"]
    assert files[0]["records"] == len(docs) + len(drops) == 6 and files[0]["error"] is None
    if not gz:  # a zstd WARC is reported by name, not misread
        (tmp_path / "crawl.warc.zst").write_bytes(zstandard.ZstdCompressor().compress(path.read_bytes()))
        docs, drops, files = read(tmp_path / "crawl.warc.zst")
        assert not docs and not drops and "zstd-compressed WARC" in files[0]["error"]


def test_html_files_and_their_canonical_url(tmp_path):
    canonical = '<link rel="canonical" href="https://blog.example.com/bridge">'
    (tmp_path / "a.html.gz").write_bytes(gzip.compress(page("Bridge", PROSE, canonical).encode("utf-8")))
    (tmp_path / "b.htm").write_bytes(page("Мост", RUSSIAN, '<meta charset="windows-1251">').encode("cp1251"))
    docs, drops, _ = read(tmp_path)
    assert not drops and [d.url for d in docs] == ["https://blog.example.com/bridge", ""]
    assert "wooden deck" in docs[0].text and "деревянный настил" in docs[1].text
    assert "Privacy policy" not in docs[0].text  # the main content only
    text_mode, _, _ = read(tmp_path / "a.html.gz", extract="text")
    assert "Privacy policy" in text_mode[0].text and "<" not in text_mode[0].text


@pytest.fixture(scope="module")
def web_data():
    if not (WEB / "sample-0001.warc.gz").is_file():
        pytest.skip(f"{WEB} not found (set CRAMKIT_SHARED_DATA)")
    return WEB


def test_real_warc_and_wet(web_data):
    docs, drops, files = read(web_data / "sample-0001.warc.gz")
    assert len(docs) == 15 and all(d.url.startswith("https://") for d in docs)
    assert not any(m in d.text for d in docs for m in MARKUP)
    reasons = {d.reason for d in drops}
    assert reasons == {"read/warc_warcinfo", "read/warc_request", "read/warc_metadata", "read/warc_resource"}
    assert files[0]["records"] == len(docs) + len(drops)
    wet, wet_drops, _ = read(web_data / "whirlwind.warc.wet.gz")
    assert [d.url for d in wet] == ["https://an.wikipedia.org/wiki/Escopete"] and len(wet_drops) == 1
    assert wet[0].text.startswith("Escopete - Biquipedia")  # the conversion record's text as is
    cc, _, _ = read(web_data / "cc-excerpt.warc.gz")
    spb = next(d for d in cc if d.url == "http://01spb.ru/company/")
    assert "пожарной безопасности" in spb.text  # windows-1251 from the HTTP header


# ---- cleaning rules, on lines from real pages --------------------------------------------------------

REAL = {  # lines of the pages in ../shared/data/web, as extracted (none of them mentions JavaScript)
    "policy": "Terms of Use page.",
    "cookie": "Declaración de cookies",
    "email": "For more information on CC’s works on AI, contact us at info@creativecommons.org",
    "ip": "Older versions used the IPs 38.107.191.66 through 38.107.191.119. The current version crawls from Amazon AWS.",
    "phone": "Заказать звонок +7 (926) 081-55-07 Центральный офис kda21@yandex.ru Компания О компании",
}
JAVASCRIPT = "Please enable JavaScript to view the comments powered by Disqus."  # written: a common web line


def cfg(**kw):
    return webclean.WebCleanConfig(**kw)


def test_line_rules():
    prose = PROSE[0]
    assert webclean.line_rule(prose, cfg(terminal_punct=True, min_words_per_line=3, javascript=True, policy=True)) is None
    assert webclean.line_rule("Ir al contenido", cfg(terminal_punct=True)) == "terminal_punct"
    assert webclean.line_rule("Menú principal", cfg(min_words_per_line=3)) == "min_words_per_line"
    assert webclean.line_rule(JAVASCRIPT, cfg(javascript=True)) == "javascript"
    assert webclean.line_rule(REAL["policy"], cfg(policy=True)) == "policy"
    assert webclean.line_rule(REAL["cookie"], cfg(policy=True)) is None  # C4's phrases only
    assert webclean.line_rule(JAVASCRIPT, cfg()) is None  # every rule off by default


def test_page_rules_and_counts(web_data):
    wet, _, _ = read(web_data / "whirlwind.warc.wet.gz")
    menu = wet[0].text  # a Wikipedia page's whole visible text: menus, short lines
    assert webclean.fineweb_rule(menu, cfg(short_line_ratio=0.67)) == "short_line_ratio"
    assert webclean.fineweb_rule(menu, cfg(line_punct_ratio=0.12)) == "line_punct_ratio"
    assert webclean.fineweb_rule(menu + "\n" + menu, cfg(dup_line_chars=0.01)) == "dup_line_chars"
    assert webclean.fineweb_rule("\n".join(PROSE), cfg(line_punct_ratio=0.12, short_line_ratio=0.67,
                                                       dup_line_chars=0.01)) is None
    clean = webclean.WebClean(cfg(terminal_punct=True, min_words_per_line=3, javascript=True, policy=True,
                                  lorem_ipsum=True, curly_brace=True))
    tally = Tally()
    docs = [Doc(1, "a", "\n".join([PROSE[0], REAL["policy"], "Ir al contenido", JAVASCRIPT, PROSE[1]])),
            Doc(2, "b", PROSE[0] + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit."),
            Doc(3, "c", PROSE[0] + "\nfunction f() { return 1; }."),
            Doc(4, "d", "Ir al contenido\nMenú principal")]
    kept = clean.apply(docs, tally)
    assert [d.text for d in kept] == [PROSE[0] + "\n" + PROSE[1]]
    assert tally.info == {"web/lines/policy": 1, "web/lines/terminal_punct": 3, "web/lines/javascript": 1}
    assert {r: v[0] for r, v in tally.dropped.items()} == {"web/lorem_ipsum": 1, "web/curly_brace": 1,
                                                          "web/no_lines": 1}


def test_blocklist():
    urls, domains = webclean.read_blocklist("# spam\nexample.com\nhttps://news.example.org/bridge/\n")
    assert webclean.blocked("https://www.example.com/x", urls, domains)
    assert webclean.blocked("https://news.example.org/bridge#top", urls, domains)
    assert not webclean.blocked("https://news.example.org/other", urls, domains)
    assert not webclean.blocked("https://notexample.com/", urls, domains) and not webclean.blocked("", urls, domains)


def test_pii_placeholders():
    text, counts = webclean.redact("\n".join(REAL[k] for k in ("email", "ip", "phone")))
    assert "info@creativecommons.org" not in text and "38.107.191" not in text and "081-55-07" not in text
    assert text.split("\n") == ["For more information on CC’s works on AI, contact us at [EMAIL]",
                                "Older versions used the IPs [IP] through [IP]. The current version crawls from Amazon AWS.",
                                "Заказать звонок [PHONE] Центральный офис [EMAIL] Компания О компании"]
    assert counts == {"email": 2, "ip": 2, "phone": 1}
    for safe in ("In 1999-2000 the 12 members met 3 times.", "Version 10.0.19041.1.2 of the 20 page report, 2024-05-18.",
                 "Call 555-123-4567 or (555) 123-4567 or fe80::1ff:fe23:4567:890a."):
        out, found = webclean.redact(safe)
        assert (found == {}) == safe.startswith(("In", "Version")), (safe, out)


def test_pipeline_web_end_to_end(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "crawl.warc.gz").write_bytes(small_warc(True))
    blocked = tmp_path / "blocked.txt"
    blocked.write_text("ru.example.org\n")
    out = tmp_path / "out"
    proc = run("--input", src, "--output", out, "--until", "clean", "dedup.exact=false", "dedup.near=false",
               "filters.enabled=false", "normalize.preset=cased", f"webclean.blocked={blocked}", "webclean.pii=true",
               "webclean.terminal_punct=true", "webclean.policy=true")
    stats = json.loads((out / "stats.json").read_text())
    assert stats["documents"] == {"read": 6, "kept": 1, "dropped": 5, "balanced": True}
    assert stats["dropped"]["url/blocked"]["docs"] == 1 and stats["dropped"]["read/truncated"]["docs"] == 1
    assert stats["web"]["with_url"] == 2
    [doc] = docs_of(out)
    assert doc["url"] == "https://news.example.org/bridge" and doc["date"] == "2024-05-18T01:58:10Z"
    assert doc["text"].split("\n") == PROSE
    assert "url/blocked" in proc.stderr + proc.stdout
    pq_out = tmp_path / "pq"
    run("--input", src, "--output", pq_out, "--until", "clean", "filters.enabled=false", "output.format=parquet")
    table = pq.read_table(next(pq_out.glob("docs-*.parquet")))
    assert table.column_names == ["id", "text", "url", "date"]
    assert table.column("url").to_pylist() == ["https://news.example.org/bridge", "https://ru.example.org/most"]


def test_split_warc_gz_reads_the_same_records(web_data):
    path = web_data / "sample-0001.warc.gz"
    cfg = config.load()
    whole = inputs.expand([str(path)])
    split = inputs.expand([str(path)], split_bytes=40_000)
    assert len(whole.units) == 1 and len(split.units) == path.stat().st_size // 40_000 + 1

    def names(found):
        reader = sources.Reader(cfg.source, cfg.web)
        out = [(x.name, x.url if isinstance(x, Doc) else x.reason) for u in found.units for x in reader.read(u)]
        return out, sum(f["records"] for f in reader.files)

    assert names(split) == names(whole)
    assert len(names(whole)[0]) == 34


def test_chunked_and_compressed_payloads_are_decoded(tmp_path):
    body = page("Bridge", PROSE).encode()
    gz = gzip.compress(body)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (gz[:100], gz[100:])) + b"0\r\n\r\n"
    head = "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Encoding: {}\r\n{}\r\n"
    path = tmp_path / "encoded.warc"
    path.write_bytes(record("response", "https://a.example.org/", head.format("gzip", "Transfer-Encoding: chunked\r\n").encode()
                            + chunked)
                     + record("response", "https://b.example.org/", head.format("br", "").encode() + brotli.compress(body)))
    docs, drops, _ = read(path)
    assert not drops and [d.url for d in docs] == ["https://a.example.org/", "https://b.example.org/"]
    assert all("wooden deck would not survive" in d.text for d in docs)
    broken = head.format("br", "").encode() + brotli.compress(body)[:-40] + b"garbage" * 20
    path.write_bytes(record("response", "https://c.example.org/", broken) + path.read_bytes())
    docs, drops, files = read(path)  # counted, and the records after it are read
    assert [d.reason for d in drops] == ["read/undecodable"] and len(docs) == 2 and files[0]["error"] is None


def test_http2_status_and_an_untyped_page_that_looks_like_html(tmp_path):
    xhtml = ("\ufeff<?xml version='1.0'?>\n" + page("Bridge", PROSE)).encode()
    path = tmp_path / "h2.warc"
    path.write_bytes(record("response", "https://a.example.org/", b"HTTP/2 200\r\ncontent-type: text/html\r\n\r\n"
                            + page("Bridge", PROSE).encode())
                     + record("response", "https://b.example.org/", b"HTTP/1.1 200 OK\r\n\r\n" + xhtml)
                     + record("response", "https://c.example.org/", b"HTTP/1.1 200 OK\r\n\r\n" + b"just text, no markup"))
    docs, drops, _ = read(path)
    assert [d.url for d in docs] == ["https://a.example.org/", "https://b.example.org/"]
    assert [d.reason for d in drops] == ["read/not_html"]


def test_a_warc_gzipped_whole_reads_like_one_gzipped_per_record(web_data, tmp_path):
    path = tmp_path / "whole.warc.gz"
    path.write_bytes(gzip.compress(gzip.decompress((web_data / "sample-0001.warc.gz").read_bytes())))
    per_record, _, _ = read(web_data / "sample-0001.warc.gz")
    whole, drops, files = read(path)
    assert [(d.url, d.text) for d in whole] == [(d.url, d.text) for d in per_record]
    assert files[0]["records"] == 34 and files[0]["error"] is None
    cfg = config.load()
    reader = sources.Reader(cfg.source, cfg.web)
    split = [x.name for u in inputs.expand([str(path)], split_bytes=40_000).units for x in reader.read(u)]
    assert split == [d.name for d in sorted(whole + drops, key=lambda d: d.name)]
