"""models.allocator: a coding process keeps freed buffers (glibc), unless switched off."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from models.allocator import SWITCH

ROOT = Path(__file__).resolve().parents[1]

# Growth of the resident set after allocating, touching and freeing 64 MiB, before and
# after ``keep_freed_memory`` (in a fresh process: the setting is process-wide).
PROBE = """
import json, numpy as np
from models.allocator import keep_freed_memory

def kept_after_free():
    def rss(): return int(open("/proc/self/statm").read().split()[1]) * 4096
    before = rss()
    block = np.ones(64 << 20, dtype=np.uint8)
    del block
    return rss() - before

default = kept_after_free()
on = keep_freed_memory()
print(json.dumps({"on": on, "default": default, "after": kept_after_free()}))
"""


def probe(**env: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_buffers_stay_in_the_process_once_switched_on():
    result = probe()
    assert result["on"] is True
    assert result["default"] < 8 << 20  # glibc's default: a 64 MiB block goes back to the OS
    assert result["after"] >= 60 << 20  # now it stays for the next image


@pytest.mark.skipif(platform.system() != "Linux", reason="reads /proc")
def test_the_environment_switch_turns_it_off():
    result = probe(**{SWITCH: "0"})
    assert result["on"] is False and result["after"] < 8 << 20
