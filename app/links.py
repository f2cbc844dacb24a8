"""A team's link patterns (`TeamLink` rows) as the renderer matches them. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class LinkRule:
    """A team's link pattern (`TeamLink`): `PROJ-{id}` in a post links to `url` with the
    number in place of `{id}`. Not inside code, and not in the middle of a word, a path or
    another reference (`xPROJ-1`, `/#12`)."""

    pattern: str
    url: str

    def regex(self) -> str:
        before, _, after = self.pattern.partition("{id}")
        return rf"(?<![\w#/-]){re.escape(before)}(?P<id>\d+){re.escape(after)}(?!\w)"
