"""Score smtp's reply extraction against the shared reply corpus and print its table.

Run from anywhere: ``python bench/replies.py [extra score.py args, e.g. --failures 20]``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / ".." / "shared" / "corpus" / "replies"
FUNCTION = "smtp.extract:extract_reply"


def main(argv: list[str]) -> int:
    score = CORPUS / "score.py"
    if not score.is_file():
        print(f"reply corpus not found: expected {score.resolve()}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    result = subprocess.run(
        [sys.executable, str(score), FUNCTION, *argv], cwd=ROOT, env=env, check=False
    )
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
