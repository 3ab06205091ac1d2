"""Model and training configs (one dataclass each, stored in every checkpoint) and presets.

Each setting is declared once, with its range or choices and help (:mod:`models.options`): validation, the
command line's flags, the Jobs form and docs/options.md are derived from these declarations.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .options import ConfigError, check, option

__all__ = ["ConfigError", "ModelConfig", "TrainConfig", "Preset", "PRESETS", "get_preset", "apply_overrides"]

CELLS = ("rnn", "gru", "lstm")
TASKS = ("lm", "sentiment")
GATES = {"rnn": (), "gru": ("z", "r", "n"), "lstm": ("i", "f", "g", "o")}


@dataclass
class ModelConfig:
    """The model's shape (settings declared with :func:`models.options.option`: range, choices, help)."""
    task: str = option("lm", "lm (next word) or sentiment (a label per document); follows the corpus",
                       choices=TASKS, offered=False)
    cell: str = option("lstm", "recurrent cell", choices=CELLS)
    layers: int = option(2, "number of layers", low=1, high=16)
    hidden_size: int = option(200, "hidden units per layer", low=1, high=8192, label="Hidden size")
    embed_size: int = option(200, "embedding size", low=1, high=8192, label="Embedding size")
    dropout: float = option(0.0, "dropout", low=0.0, high=0.99)
    vocab_size: int = option(10_000, "vocabulary size (the model's: set from the built vocabulary)", low=1,
                             high=10_000_000, label="Vocabulary size")
    num_classes: int = option(2, "classes of a classifier (from the corpus)", low=1, high=10_000, offered=False)

    def validate(self) -> ModelConfig:
        check(self)
        return self

    @property
    def states(self) -> tuple[str, ...]:
        """Names of the traced states of one layer: h, c for LSTM, then the gates."""
        return ("h", "c") + GATES[self.cell] if self.cell == "lstm" else ("h",) + GATES[self.cell]


LOSSES = ("token", "sequence")
SCHEDULES = ("plateau", "step")
INITS = ("examples", "uniform")
OPTIMIZERS = ("sgd", "adam")


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
    corpus: str = option("brown", "a built-in corpus name or `upload:<id>` (its own --corpus flag and form section)",
                         offered=False)
    vocab_size: int = option(10_000, "vocabulary size", low=4, high=1_000_000, label="Vocabulary size")
    optimizer: str = option("sgd", "optimizer", choices=OPTIMIZERS)
    lr: float = option(20.0, "learning rate", low=1e-8, high=100.0, label="Learning rate")
    loss: str = option("token", "scale of the loss that lr and clip apply to: token (mean over tokens) or sequence "
                       "(summed over the bptt steps, mean over the batch; Zaremba et al.)", choices=LOSSES)
    schedule: str = option("plateau", "plateau (lr x lr_decay after an epoch with no better validation loss) or "
                           "step (lr x lr_decay every epoch after decay_after)", choices=SCHEDULES)
    lr_decay: float = option(0.25, "lr factor: on a plateau, or every epoch after decay_after (step)", low=1e-6,
                             high=1.0, label="LR decay")
    decay_after: int = option(0, "step schedule: epochs at full lr", low=0, high=1000, label="Decay after (epochs)")
    clip: float = option(0.25, "max gradient norm of the loss above (0 = off)", low=0.0, high=1e6,
                         label="Gradient clip")
    epochs: int = option(40, "maximum epochs", low=1, high=1000)
    batch_size: int = option(20, "batch size", low=1, high=4096)
    bptt: int = option(35, "BPTT length (language models)", low=1, high=10_000, label="BPTT length")
    weight_decay: float = option(0.0, "L2 weight decay", low=0.0, high=1.0)
    init: str = option("examples", "examples (embedding and output weights ±init_range, output bias 0, the "
                       "recurrent core torch's default ±1/√H) or uniform (every weight ±init_range)", choices=INITS)
    init_range: float = option(0.1, "uniform init range of the weights", low=0.0, high=10.0, label="Init range")
    patience: int = option(0, "early stopping: epochs without a better validation loss (0 = off)", low=0, high=1000,
                           label="Patience (0 = off)")
    max_train_tokens: int = option(0, "train on the first N tokens (0 = all; demo presets use a slice)", low=0,
                                   high=10**10, label="Max training tokens (0 = all)")
    max_len: int = option(400, "longest document kept, in tokens (classifiers)", low=1, high=100_000,
                          label="Max document length")
    seed: int = option(1234, "random seed", low=0, high=2**31 - 1)

    #: Values of fields added after the first release, for checkpoints written before them
    #: (they were trained with a token-mean loss and a step schedule).
    LEGACY = {"loss": "token", "schedule": "step", "init": "uniform"}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """The config stored in a checkpoint, older ones included."""
        return cls(**{**cls.LEGACY, **d})

    def validate(self) -> TrainConfig:
        check(self)
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
