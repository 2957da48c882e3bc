"""``python -m lspilot.child_guard PROGRAM [ARGS…]``: run PROGRAM so that it dies with
lspilot, even on ``kill -9`` (Linux: ``prctl(PR_SET_PDEATHSIG)`` survives ``exec``).

For children lspilot starts through libraries that take no ``preexec_fn`` (MCP servers,
through the ``mcp`` package's stdio client): the guard is the child, sets the signal,
checks that its parent still lives, then becomes PROGRAM.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m lspilot.child_guard PROGRAM [ARGS...]")
    parent = os.getppid()
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # lspilot died before the signal was armed
            sys.exit(1)
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    except OSError as exc:
        sys.exit(f"could not start {sys.argv[1]!r}: {exc.strerror or exc}")


if __name__ == "__main__":
    main()
