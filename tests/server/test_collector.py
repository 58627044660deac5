"""A server process collects cyclic garbage rarely and never walks what it started with."""

from __future__ import annotations

import subprocess
import sys


def test_a_tuned_server_process_has_the_server_thresholds_and_a_frozen_start():
    probe = ("import gc; from federation.server import collector; "
             "collector.tune_for_server(); "
             "print(gc.get_threshold() == collector.THRESHOLDS, gc.get_freeze_count() > 1000)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.split() == ["True", "True"]

