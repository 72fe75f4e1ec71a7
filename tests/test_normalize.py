"""Normalizers: `cramming` equals the tokenizer's HF normalizer on every code point and on real text;
`cased` cleans whitespace only; the Normalize stage drops what becomes empty."""

import random

from conftest import staged

from pipeline.cleaning import normalize
from pipeline.tokens.tokenize import cramming_normalizer


def test_cramming_steps():
    assert normalize.cramming("Ça  Va?  Déjà vu") == "ca va? deja vu"
    assert normalize.cramming("naïve ☃ café — Ω") == "naive cafe "
    assert normalize.cramming("line\nbreak\ttab") == "line\nbreak\ttab"


def test_cramming_equals_hf_normalizer_on_every_code_point():
    hf = cramming_normalizer()
    text = "".join(f"a{chr(cp)}  B{chr(cp)}{chr(cp)} " for cp in range(0x110000) if not 0xD800 <= cp < 0xE000)
    assert normalize.cramming(text) == hf.normalize_str(text)


def test_cramming_equals_hf_normalizer_on_mixed_text(shared_text):
    hf = cramming_normalizer()
    rng = random.Random(0)
    pools = [range(0x20, 0x250), range(0x300, 0x370), range(0x370, 0x3000), [0x20] * 20, [0x0A, 0x09]]
    for _ in range(300):
        s = "".join(chr(rng.choice(rng.choice(pools))) for _ in range(60))
        assert normalize.cramming(s) == hf.normalize_str(s)
    for path in sorted((shared_text / "nltk_state_union").iterdir())[:10]:
        s = path.read_bytes().decode("latin-1")
        assert normalize.cramming(s) == hf.normalize_str(s)


def test_cramming_is_idempotent():
    s = "Ünïcödé  ﬁ ligature, ½ and 　wide space"
    assert normalize.cramming(normalize.cramming(s)) == normalize.cramming(s)


def test_cased():
    s = "Ｆｕｌｌwidth\u00a0space\r\nline  end   \r\n\r\n\r\n\r\n\tCafé ﬁne\u2003x  "
    assert normalize.cased(s) == "Fullwidth space\nline end\n\n Café fine x"


def test_scan_drops_documents_empty_after_normalizing(tmp_path):
    _, _, _, scans = staged(tmp_path, ["Héllo  World", "☃☃ ✓", "ok"], until="normalize")
    tally = scans[0].tally
    assert tally.dropped == {"normalize/empty": [1, 4]}
    assert tally.out["normalize"] == [2, len("hello world") + 2]
