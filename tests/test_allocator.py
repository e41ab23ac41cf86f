"""domain/allocator.py: large buffers are mapped on their own, so freed memory goes back."""

from __future__ import annotations

import os
import subprocess
import sys

ASK = "from domain.allocator import release_large_buffers; print(release_large_buffers())"


def _asked(**env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", ASK], capture_output=True, text=True, env={**os.environ, **env}
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_threshold_is_fixed_on_glibc_unless_the_admin_set_one() -> None:
    if os.confstr("CS_GNU_LIBC_VERSION") is None:  # pragma: no cover - not glibc
        assert _asked() == "False"
        return
    assert _asked() == "True"
    assert _asked(MALLOC_MMAP_THRESHOLD_="4194304") == "False"  # the admin's rules
