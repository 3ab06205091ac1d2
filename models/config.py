"""Model and training configs (one dataclass each, stored in every checkpoint) and presets."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

CELLS = ("rnn", "gru", "lstm")
TASKS = ("lm", "sentiment")
GATES = {"rnn": (), "gru": ("z", "r", "n"), "lstm": ("i", "f", "g", "o")}


class ConfigError(ValueError):
    """A configuration value that cannot work, with the field named."""


#: The range of every numeric setting, (lowest, highest), both inclusive. ``validate()`` checks them and
#: the job form (workers/planning.py, the Jobs page) offers and checks the same ranges: one table for both.
MODEL_BOUNDS: dict[str, tuple[float, float]] = {
    "layers": (1, 16), "hidden_size": (1, 8192), "embed_size": (1, 8192), "dropout": (0.0, 0.99),
    "vocab_size": (1, 10_000_000), "num_classes": (1, 10_000),
}
TRAIN_BOUNDS: dict[str, tuple[float, float]] = {
    "vocab_size": (4, 1_000_000), "lr": (1e-8, 100.0), "lr_decay": (1e-6, 1.0), "decay_after": (0, 1000),
    "clip": (0.0, 1e6), "epochs": (1, 1000), "batch_size": (1, 4096), "bptt": (1, 10_000),
    "weight_decay": (0.0, 1.0), "init_range": (0.0, 10.0), "patience": (0, 1000),
    "max_train_tokens": (0, 10**10), "max_len": (1, 100_000), "seed": (0, 2**31 - 1),
}


def check_bounds(cfg: Any, bounds: dict[str, tuple[float, float]]) -> None:
    """ConfigError naming the first field of ``cfg`` that is not a number of its field's type within ``bounds``."""
    for f in dataclasses.fields(cfg):
        if f.name not in bounds:
            continue
        lo, hi = bounds[f.name]
        v = getattr(cfg, f.name)
        whole = isinstance(f.default, int)
        if isinstance(v, bool) or not isinstance(v, int if whole else (int, float)) or not math.isfinite(v):
            raise ConfigError(f"{f.name} must be a {'whole number' if whole else 'number'}, got {v!r}")
        if not lo <= v <= hi:
            raise ConfigError(f"{f.name} must be between {lo:g} and {hi:g}, got {v!r}")


@dataclass
class ModelConfig:
    task: str = "lm"                 # "lm" (next word) or "sentiment" (many-to-one)
    cell: str = "lstm"
    layers: int = 2
    hidden_size: int = 200
    embed_size: int = 200
    dropout: float = 0.0
    vocab_size: int = 10_000         # set from the built vocabulary
    num_classes: int = 2             # sentiment only

    def validate(self) -> ModelConfig:
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.cell not in CELLS:
            raise ConfigError(f"cell must be one of {CELLS}, got {self.cell!r}")
        check_bounds(self, MODEL_BOUNDS)
        return self

    @property
    def states(self) -> tuple[str, ...]:
        """Names of the traced states of one layer: h, c for LSTM, then the gates."""
        return ("h", "c") + GATES[self.cell] if self.cell == "lstm" else ("h",) + GATES[self.cell]


LOSSES = ("token", "sequence")
SCHEDULES = ("plateau", "step")
INITS = ("examples", "uniform")
OPTIMIZERS = ("sgd", "adam")
#: The allowed values of the text settings a user chooses (``validate()`` and the job form read them).
CHOICES: dict[str, tuple[str, ...]] = {"cell": CELLS, "optimizer": OPTIMIZERS, "loss": LOSSES, "schedule": SCHEDULES,
                                     "init": INITS}


@dataclass
class TrainConfig:
    """How to train.  The defaults are the pytorch/examples ``word_language_model`` recipe.

    ``loss`` sets the scale that ``lr`` and ``clip`` apply to (language models):
    ``token`` is the cross-entropy averaged over every predicted token of a
    batch (pytorch/examples); ``sequence`` is it summed over the ``bptt`` time
    steps and averaged over the batch (Zaremba et al.), so its gradient is
    ``bptt`` times larger.  Classifiers always average over documents.
    ``schedule``: ``plateau`` multiplies lr by ``lr_decay`` after each epoch
    whose validation loss is no better than the best so far (pytorch/examples:
    ÷4); ``step`` multiplies it by ``lr_decay`` every epoch after ``decay_after``
    (Zaremba et al.).
    """
    corpus: str = "brown"
    vocab_size: int = 10_000
    optimizer: str = "sgd"           # "sgd" or "adam"
    lr: float = 20.0
    loss: str = "token"              # "token" (mean over tokens) or "sequence" (summed over time, mean over batch)
    schedule: str = "plateau"        # "plateau" or "step"
    lr_decay: float = 0.25           # lr factor: on a plateau, or every epoch after `decay_after` (step)
    decay_after: int = 0             # step schedule: epochs at full lr
    clip: float = 0.25               # max gradient norm of the loss above (0 = off)
    epochs: int = 40
    batch_size: int = 20
    bptt: int = 35
    weight_decay: float = 0.0
    init: str = "examples"           # "examples": embedding and output weights ±init_range, output bias 0,
    #                                  the recurrent core torch's default ±1/√H; "uniform": every weight ±init_range
    init_range: float = 0.1
    patience: int = 0                # early stopping: epochs without a better validation loss (0 = off)
    max_train_tokens: int = 0        # 0 = all; demo presets use a slice of the corpus
    max_len: int = 400               # sentiment: longest document kept (tokens)
    seed: int = 1234

    #: Values of fields added after the first release, for checkpoints written before them
    #: (they were trained with a token-mean loss and a step schedule).
    LEGACY = {"loss": "token", "schedule": "step", "init": "uniform"}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """The config stored in a checkpoint, older ones included."""
        return cls(**{**cls.LEGACY, **d})

    def validate(self) -> TrainConfig:
        check_bounds(self, TRAIN_BOUNDS)
        for name in ("optimizer", "loss", "schedule", "init"):
            if getattr(self, name) not in CHOICES[name]:
                raise ConfigError(f"{name} must be one of {', '.join(CHOICES[name])}, got {getattr(self, name)!r}")
        return self


@dataclass
class Preset:
    description: str
    model: ModelConfig
    train: TrainConfig = field(default_factory=TrainConfig)


def _lm(cell: str, layers: int, hidden: int, dropout: float, **train: Any) -> tuple[ModelConfig, TrainConfig]:
    return (ModelConfig("lm", cell, layers, hidden, hidden, dropout), TrainConfig(**train))


# Zaremba et al. (2014): SGD on the loss summed over the 35 unrolled steps, clip 5 on that
# gradient, a step schedule.  Their lr 1 on the summed loss is lr 35 on the token mean.
_ZAREMBA = dict(loss="sequence", schedule="step", init="uniform", lr=1.0, clip=5.0, patience=3)
# pytorch/examples word_language_model: SGD lr 20 on the token-mean loss, clip 0.25, lr ÷4 whenever
# the validation loss does not improve, 40 epochs.
_EXAMPLES = dict(loss="token", schedule="plateau", init="examples", lr=20.0, lr_decay=0.25, clip=0.25, epochs=40,
                 patience=0)

PRESETS: dict[str, Preset] = {
    "lstm-small": Preset("Zaremba et al. small: 2x200 LSTM, loss summed over 35 steps, SGD lr 1, clip 5, "
                         "13 epochs, lr halved every epoch after epoch 4",
                         *_lm("lstm", 2, 200, 0.0, **_ZAREMBA, epochs=13, lr_decay=0.5, decay_after=4)),
    "lstm-medium": Preset("Zaremba et al. medium: 2x650 LSTM, dropout 0.5, 39 epochs, lr x0.8 after epoch 6",
                          *_lm("lstm", 2, 650, 0.5, **_ZAREMBA, epochs=39, lr_decay=0.8, decay_after=6,
                               init_range=0.05)),
    "lstm-large": Preset("Zaremba et al. large: 2x1500 LSTM, dropout 0.65, 55 epochs, lr /1.15 after epoch 14, "
                         "clip 10", *_lm("lstm", 2, 1500, 0.65, **{**_ZAREMBA, "clip": 10.0}, epochs=55,
                                         lr_decay=1 / 1.15, decay_after=14, init_range=0.04)),
    "small": Preset("pytorch/examples recipe: 2x200 LSTM, dropout 0.2, SGD lr 20, clip 0.25, lr /4 on a "
                    "plateau, 40 epochs", *_lm("lstm", 2, 200, 0.2, **_EXAMPLES)),
    "medium": Preset("pytorch/examples recipe: 2x650 LSTM, dropout 0.5, SGD lr 20, clip 0.25, lr /4 on a "
                     "plateau, 40 epochs", *_lm("lstm", 2, 650, 0.5, **_EXAMPLES)),
    "large": Preset("pytorch/examples recipe: 2x1500 LSTM, dropout 0.65, SGD lr 20, clip 0.25, lr /4 on a "
                    "plateau, 40 epochs", *_lm("lstm", 2, 1500, 0.65, **_EXAMPLES)),
    "gru-medium": Preset("RNNVis GRU: 2x600, dropout 0.5, pytorch/examples recipe",
                         *_lm("gru", 2, 600, 0.5, **_EXAMPLES)),
    "rnn-medium": Preset("RNNVis vanilla RNN: 2x600 tanh, dropout 0.5, pytorch/examples recipe at lr 5",
                         *_lm("rnn", 2, 600, 0.5, **{**_EXAMPLES, "lr": 5.0})),
    "sentiment-gru": Preset("RNNVis sentiment GRU: 1x50, Adam 1e-3",
                            ModelConfig("sentiment", "gru", 1, 50, 50, 0.2),
                            TrainConfig(corpus="fine_foods", optimizer="adam", lr=1e-3, schedule="step", lr_decay=1.0,
                                        epochs=10, batch_size=32, clip=5.0, patience=3)),
    "sentiment-lstm": Preset("Sentiment LSTM: 1x100, Adam 1e-3",
                             ModelConfig("sentiment", "lstm", 1, 100, 100, 0.2),
                             TrainConfig(corpus="fine_foods", optimizer="adam", lr=1e-3, schedule="step",
                                         lr_decay=1.0, epochs=10, batch_size=32, clip=5.0, patience=3)),
}
# The demo models: small enough for readable memory chips, trained long enough (Brown's whole training split,
# 3 epochs: a few minutes each on two CPU cores) that their clusters follow part of speech.  `rnnvis demo`
# installs the checkpoints these presets made (models/demo_weights.py); `--rebuild` trains them again.
_DEMO_LM = dict(_EXAMPLES, corpus="brown", vocab_size=5000, epochs=3, batch_size=32)
PRESETS.update({
    "demo-lstm": Preset("demo: 2x64 LSTM on Brown", ModelConfig("lm", "lstm", 2, 64, 64, 0.0),
                        TrainConfig(**_DEMO_LM)),
    "demo-gru": Preset("demo: 1x64 GRU on Brown", ModelConfig("lm", "gru", 1, 64, 64, 0.0),
                       TrainConfig(**_DEMO_LM)),
    # A vanilla RNN diverges at lr 20 (valid perplexity 13,000 after 2 epochs over 300k Brown tokens);
    # at lr 5 it reaches 162 there, at lr 2 198.
    "demo-rnn": Preset("demo: 1x64 vanilla RNN on Brown", ModelConfig("lm", "rnn", 1, 64, 64, 0.0),
                       TrainConfig(**{**_DEMO_LM, "lr": 5.0})),
    "demo-sentiment": Preset("demo: 1x32 GRU sentiment classifier on Amazon fine-food reviews",
                             ModelConfig("sentiment", "gru", 1, 32, 32, 0.0),
                             TrainConfig(corpus="fine_foods", vocab_size=5000, optimizer="adam", lr=3e-3,
                                         schedule="step", lr_decay=1.0, epochs=3, batch_size=32, clip=5.0,
                                         max_len=200)),
})


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; `rnnvis presets` lists them: {', '.join(PRESETS)}")
    p = PRESETS[name]
    return Preset(p.description, dataclasses.replace(p.model), dataclasses.replace(p.train))


def apply_overrides(model: ModelConfig, train: TrainConfig, overrides: dict[str, Any]) -> None:
    """Set fields by name on whichever config has them (unknown names are an error)."""
    for key, value in overrides.items():
        if value is None:
            continue
        targets = [c for c in (model, train) if key in {f.name for f in dataclasses.fields(c)}]
        if not targets:
            raise ConfigError(f"unknown setting {key!r}")
        for c in targets:
            ftype = type(getattr(c, key))
            try:
                setattr(c, key, ftype(value) if ftype in (int, float, str) else value)
            except ValueError:
                raise ConfigError(f"{key} must be a {ftype.__name__}, got {value!r}") from None
    if "embed_size" not in overrides and "hidden_size" in overrides and overrides["hidden_size"] is not None:
        model.embed_size = model.hidden_size
