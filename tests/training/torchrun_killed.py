"""``salience train ARGS`` for torchrun, whose rank 1 kills itself (SIGKILL) before the optimizer
step numbered ``KILL_AT_STEP``: a process lost mid-run, for tests/training/test_distributed.py."""

import os
import signal
import sys

from salience.cli import app
from salience.training.loop import Trainer

if os.environ.get("RANK") == "1":
    kill_at = int(os.environ["KILL_AT_STEP"])
    step = Trainer._step

    def step_or_die(self, run, batch, number):
        if number == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return step(self, run, batch, number)

    Trainer._step = step_or_die

app(["train", *sys.argv[1:]])
