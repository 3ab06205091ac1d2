"""What the CLI's commands share: the settings, the training overrides, analysis options, printing a frame."""
from __future__ import annotations

import dataclasses
import sys

__all__ = ["OVERRIDES", "settings", "analysis_options", "print_frame"]

OVERRIDES = {  # flag -> (type, help)
    "cell": (str, "rnn, gru or lstm"), "layers": (int, "number of layers"),
    "hidden_size": (int, "hidden units per layer"), "embed_size": (int, "embedding size"),
    "dropout": (float, "dropout"), "epochs": (int, "maximum epochs"), "lr": (float, "learning rate"),
    "loss": (str, "scale of the loss that --lr and --clip apply to: token (mean over tokens) or sequence "
                  "(summed over the bptt steps, mean over the batch; Zaremba et al.)"),
    "schedule": (str, "plateau (lr x lr_decay after an epoch with no better validation loss) or step"),
    "lr_decay": (float, "lr factor: on a plateau, or every epoch after --decay-after (step)"),
    "decay_after": (int, "step schedule: epochs at full lr"),
    "optimizer": (str, "sgd or adam"), "clip": (float, "gradient norm clip (0 = off)"),
    "batch_size": (int, "batch size"), "bptt": (int, "BPTT length (language models)"),
    "vocab_size": (int, "vocabulary size"), "patience": (int, "early stopping patience (0 = off)"),
    "max_train_tokens": (int, "train on the first N tokens (0 = all)"), "seed": (int, "random seed"),
    "weight_decay": (float, "L2 weight decay"), "init_range": (float, "uniform init range of the weights"),
    "init": (str, "examples (embedding and output ±init_range, recurrent core torch's default) or uniform "
                  "(every weight ±init_range)"),
    "max_len": (int, "longest document kept, in tokens (classifiers)"),
}


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
