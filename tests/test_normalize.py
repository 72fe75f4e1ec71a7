"""Normalizers: `cramming` equals the tokenizer's HF normalizer on every code point and on real text;
`cased` cleans whitespace only; the Normalize stage drops what becomes empty."""

import random

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from pipeline import normalize
from pipeline.document import Doc, Drop
from pipeline.tokenize import cramming_normalizer


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


def test_normalize_stage_drops_empty():
    docs = [Doc("t:a:0", "Héllo  World"), Doc("t:a:1", "☃☃ ✓"), Doc("t:a:2", "ok")]
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        kept, dropped = p | beam.Create(docs) | normalize.Normalize(normalize.NormalizeConfig("cramming"))
        assert_that(kept, equal_to([Doc("t:a:0", "hello world"), Doc("t:a:2", "ok")]), label="kept")
        assert_that(dropped, equal_to([Drop("t:a:1", "normalize/empty", 4)]), label="dropped")
