"""docs/options.md, written from the settings' declarations: ``python -m analytics.options_doc`` rewrites it,
``python -m analytics.options_doc --check`` exits 1 when it is stale (tests/models/test_options.py runs that check).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.config import ModelConfig, TrainConfig
from models.options import options_table

from .pipeline import AnalysisOptions

DOC = Path(__file__).resolve().parents[1] / "docs" / "options.md"

_SECTIONS = (
    ("Model", ModelConfig, "The network's shape (`models/config.py`: `ModelConfig`). A preset sets them; "
                           "`rnnvis train` and `rnnvis jobs submit` take each one with a flag "
                           "as that flag, and the Jobs page as a field."),
    ("Training", TrainConfig, "How to train (`models/config.py`: `TrainConfig`), set the same ways."),
    ("Analysis", AnalysisOptions, "How a trained model is analysed (`analytics/pipeline.py`: `AnalysisOptions`): "
                                  "`rnnvis train`, `rnnvis analyze` and `rnnvis jobs submit|import|analyze` take "
                                  "each one with a flag as that flag; a job request takes any of them under "
                                  "`analysis`."),
)


def render() -> str:
    """The whole of docs/options.md."""
    parts = ["# Options\n",
             "Generated from the declarations in the code by `python -m analytics.options_doc`; do not edit by hand. "
             "Each setting is declared once (`models/options.py`), with its range or choices and help; the command "
             "line's flags, the Jobs form, the checks and this page are derived from that declaration.\n"]
    for title, cls, intro in _SECTIONS:
        parts += [f"## {title}\n", intro + "\n", options_table(cls)]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analytics.options_doc", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/options.md is not what would be written")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        if not DOC.exists() or DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC} is stale: run python -m analytics.options_doc", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
