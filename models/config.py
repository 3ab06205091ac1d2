"""Model and training configs (one dataclass each, stored in every checkpoint) and presets."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

CELLS = ("rnn", "gru", "lstm")
TASKS = ("lm", "sentiment")
GATES = {"rnn": (), "gru": ("z", "r", "n"), "lstm": ("i", "f", "g", "o")}


class ConfigError(ValueError):
    """A configuration value that cannot work, with the field named."""


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

    def validate(self) -> "ModelConfig":
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.cell not in CELLS:
            raise ConfigError(f"cell must be one of {CELLS}, got {self.cell!r}")
        for name in ("layers", "hidden_size", "embed_size", "vocab_size", "num_classes"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.hidden_size > 8192 or self.embed_size > 8192 or self.layers > 16:
            raise ConfigError("hidden_size/embed_size must be <= 8192 and layers <= 16")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        return self

    @property
    def states(self) -> tuple[str, ...]:
        """Names of the traced states of one layer: h, c for LSTM, then the gates."""
        return ("h", "c") + GATES[self.cell] if self.cell == "lstm" else ("h",) + GATES[self.cell]


@dataclass
class TrainConfig:
    corpus: str = "brown"
    vocab_size: int = 10_000
    optimizer: str = "sgd"           # "sgd" or "adam"
    lr: float = 1.0
    lr_decay: float = 0.5            # multiply lr by this every epoch after `decay_after`
    decay_after: int = 4
    clip: float = 5.0
    epochs: int = 13
    batch_size: int = 20
    bptt: int = 35
    weight_decay: float = 0.0
    init_range: float = 0.1          # uniform init as in Zaremba et al.
    patience: int = 3                # early stopping: epochs without a better validation loss
    max_train_tokens: int = 0        # 0 = all; demo presets use a slice of the corpus
    max_len: int = 400               # sentiment: longest document kept (tokens)
    seed: int = 1234

    def validate(self) -> "TrainConfig":
        positive = ("vocab_size", "epochs", "batch_size", "bptt", "max_len")
        for name in positive:
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.epochs > 1000:
            raise ConfigError(f"epochs must be at most 1000, got {self.epochs}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.optimizer not in ("sgd", "adam"):
            raise ConfigError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if self.clip < 0 or self.patience < 0 or self.max_train_tokens < 0:
            raise ConfigError("clip, patience and max_train_tokens must not be negative")
        return self


@dataclass
class Preset:
    description: str
    model: ModelConfig
    train: TrainConfig = field(default_factory=TrainConfig)


def _lm(cell: str, layers: int, hidden: int, dropout: float, **train: Any) -> tuple[ModelConfig, TrainConfig]:
    return (ModelConfig("lm", cell, layers, hidden, hidden, dropout), TrainConfig(**train))


PRESETS: dict[str, Preset] = {
    "lstm-small": Preset("Zaremba et al. small: 2x200 LSTM, SGD lr 1, clip 5, bptt 35, batch 20, 13 epochs, "
                         "lr halved after epoch 4", *_lm("lstm", 2, 200, 0.0, epochs=13, lr=1.0, lr_decay=0.5,
                                                         decay_after=4, clip=5.0)),
    "lstm-medium": Preset("Zaremba et al. medium: 2x650 LSTM, dropout 0.5, 39 epochs, lr x0.8 after epoch 6",
                          *_lm("lstm", 2, 650, 0.5, epochs=39, lr=1.0, lr_decay=0.8, decay_after=6,
                               init_range=0.05)),
    "lstm-large": Preset("Zaremba et al. large: 2x1500 LSTM, dropout 0.65, 55 epochs, lr /1.15 after epoch 14, clip 10",
                         *_lm("lstm", 2, 1500, 0.65, epochs=55, lr=1.0, lr_decay=1 / 1.15, decay_after=14,
                              clip=10.0, init_range=0.04)),
    "gru-medium": Preset("RNNVis GRU: 2x600, dropout 0.5, 39 epochs",
                         *_lm("gru", 2, 600, 0.5, epochs=39, lr=1.0, lr_decay=0.8, decay_after=6, init_range=0.05)),
    "rnn-medium": Preset("RNNVis vanilla RNN: 2x600 tanh, dropout 0.5, 39 epochs, lr 0.3",
                         *_lm("rnn", 2, 600, 0.5, epochs=39, lr=0.3, lr_decay=0.8, decay_after=6, clip=1.0,
                              init_range=0.05)),
    "sentiment-gru": Preset("RNNVis sentiment GRU: 1x50, Adam 1e-3",
                            ModelConfig("sentiment", "gru", 1, 50, 50, 0.2),
                            TrainConfig(corpus="fine_foods", optimizer="adam", lr=1e-3, lr_decay=1.0, epochs=10,
                                        batch_size=32, clip=5.0, patience=3)),
    "sentiment-lstm": Preset("Sentiment LSTM: 1x100, Adam 1e-3",
                             ModelConfig("sentiment", "lstm", 1, 100, 100, 0.2),
                             TrainConfig(corpus="fine_foods", optimizer="adam", lr=1e-3, lr_decay=1.0, epochs=10,
                                         batch_size=32, clip=5.0, patience=3)),
}
# Small presets that train in well under a minute each on two CPU cores.
_DEMO_LM = dict(corpus="brown", vocab_size=5000, epochs=2, max_train_tokens=150_000, batch_size=32, bptt=35,
                lr=1.0, lr_decay=0.5, decay_after=1, clip=5.0)
PRESETS.update({
    "demo-lstm": Preset("demo: 2x64 LSTM on a slice of Brown", ModelConfig("lm", "lstm", 2, 64, 64, 0.0),
                        TrainConfig(**_DEMO_LM)),
    "demo-gru": Preset("demo: 1x64 GRU on a slice of Brown", ModelConfig("lm", "gru", 1, 64, 64, 0.0),
                       TrainConfig(**_DEMO_LM)),
    "demo-rnn": Preset("demo: 1x64 vanilla RNN on a slice of Brown", ModelConfig("lm", "rnn", 1, 64, 64, 0.0),
                       TrainConfig(**{**_DEMO_LM, "lr": 0.5, "clip": 1.0})),
    "demo-sentiment": Preset("demo: 1x32 GRU sentiment classifier on Amazon fine-food reviews",
                             ModelConfig("sentiment", "gru", 1, 32, 32, 0.0),
                             TrainConfig(corpus="fine_foods", vocab_size=5000, optimizer="adam", lr=3e-3,
                                         lr_decay=1.0, epochs=3, batch_size=32, clip=5.0, max_len=200)),
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
