"""One training loop for every model: config, data, checkpoints, the loop and per-model tasks."""

from __future__ import annotations

from salience.training.config import Config, ConfigError, config_from_dict, load_config
from salience.training.loop import Trainer, resolve_device
from salience.training.task import Task, create_task

__all__ = [
    "Config",
    "ConfigError",
    "Task",
    "Trainer",
    "config_from_dict",
    "create_task",
    "load_config",
    "resolve_device",
]
