"""Pack the demo corpora shipped in the repository from ``../shared/data``.

Run once by a maintainer (``rnnvis prepare-demo-data``); the output is
committed so the demo works from a fresh clone without ``../shared``.
"""
from __future__ import annotations

import logging
import lzma
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)
HERE = Path(__file__).parent


def prepare(shared_data: Path, out: Path = HERE) -> list[Path]:
    """Write ``brown.tsv.xz`` and ``fine_foods/{train,test}.csv.xz`` under ``out``."""
    brown = shared_data / "brown"
    cats = dict(ln.split()[:2] for ln in (brown / "cats.txt").read_text().splitlines() if ln.strip())
    written = []
    target = out / "brown.tsv.xz"
    with lzma.open(target, "wt", encoding="utf-8", preset=9) as f:
        for p in sorted(brown.iterdir()):
            if not re.fullmatch(r"c[a-r]\d\d", p.name):
                continue
            for line in p.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    f.write(f"{p.name}\t{cats[p.name]}\t{line.strip()}\n")
    written.append(target)
    (out / "fine_foods").mkdir(exist_ok=True)
    for split in ("train", "test"):
        target = out / "fine_foods" / f"{split}.csv.xz"
        with open(shared_data / "fine_foods" / f"{split}.csv", "rb") as src, lzma.open(target, "wb", preset=9) as dst:
            shutil.copyfileobj(src, dst)
        written.append(target)
    for p in written:
        log.info("wrote %s (%.1f MB)", p, p.stat().st_size / 1e6)
    return written
