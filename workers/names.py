"""The names the web process and the workers agree on: queues and tasks (no imports, so both sides can use them)."""
from __future__ import annotations

__all__ = ["QUEUE_TRAIN", "QUEUE_ANALYZE", "QUEUES", "TASK_TRAIN", "TASK_ANALYZE", "TASK_IMPORT", "TASK_ABLATE",
           "TASK_PING"]

QUEUE_TRAIN, QUEUE_ANALYZE = "train", "analyze"
QUEUES = (QUEUE_TRAIN, QUEUE_ANALYZE)
TASK_TRAIN = "rnnvis.train_model"
TASK_ANALYZE = "rnnvis.analyze_model"
TASK_IMPORT = "rnnvis.import_model"
TASK_ABLATE = "rnnvis.ablate_units"
TASK_PING = "rnnvis.ping"
