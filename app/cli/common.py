"""What the CLI's commands share: the settings, the training overrides, analysis options, printing a frame."""
from __future__ import annotations

import dataclasses
import sys

from models.config import ModelConfig, TrainConfig  # torch-free, like models.options
from models.options import add_flags, form_fields

__all__ = ["OVERRIDES", "add_override_flags", "add_analysis_flags", "settings", "analysis_options", "print_frame"]

#: The names of the training settings that are flags (argparse dests), as models/config.py declares them.
OVERRIDES: tuple[str, ...] = tuple(form_fields(ModelConfig, TrainConfig))


def add_override_flags(parser) -> list[str]:
    """A flag per training setting (models/config.py's declarations); returns their names."""
    return add_flags(parser, ModelConfig, TrainConfig)


def add_analysis_flags(parser) -> list[str]:
    """An "analysis" group of a flag per analysis option (AnalysisOptions' declarations); returns their names."""
    from analytics.pipeline import AnalysisOptions  # imports torch: only for the commands that analyse
    return add_flags(parser.add_argument_group("analysis"), AnalysisOptions, show_default=True)


def settings():
    from analytics.settings import Settings
    return Settings.from_env()


def analysis_options(args):
    from analytics.pipeline import AnalysisOptions
    fields = {f.name for f in dataclasses.fields(AnalysisOptions)}
    return AnalysisOptions(**{k: v for k, v in vars(args).items() if k in fields and v is not None})


def print_frame(df, fmt: str) -> None:
    if fmt == "csv":
        from app.logic.csv_export import write_csv
        write_csv(df, sys.stdout)
    elif fmt == "json":
        from app.cli.hosted import json_records
        print(json_records(df))
    else:
        import pandas as pd
        with pd.option_context("display.max_rows", 200, "display.max_columns", 50, "display.width", 200):
            print(df.to_string(index=False) if len(df) else f"(no rows; columns: {', '.join(df.columns)})")
