"""Corpora, vocabularies, recurrent models, training, checkpoints and tracing.

The stable notebook API::

    from models import load_model
    model, vocab = load_model("demo-lstm", store="var/store")
    ids = torch.tensor(vocab.encode("the food is good".split()))[:, None]   # [T, 1]
    states = model.trace(ids)            # {(layer, "h"|"c"|gate): [T, 1, H]}
"""
from .checkpoint import CheckpointError, load_model
from .config import PRESETS, ConfigError, ModelConfig, TrainConfig, get_preset
from .corpora import Corpus, CorpusError, load_corpus
from .rnn import RecurrentModel
from .text import Vocab, normalize, tokenize

__all__ = ["CheckpointError", "ConfigError", "Corpus", "CorpusError", "ModelConfig", "PRESETS", "RecurrentModel",
           "TrainConfig", "Vocab", "get_preset", "load_corpus", "load_model", "normalize", "tokenize"]
