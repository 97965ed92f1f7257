"""The Lobsters front-page ranking ("hotness"), as a pure function.

Lobsters' ``Story#calculated_hotness`` (app/models/story.rb) is, with no tags and no
merged stories as here::

    cpoints = [score, 0.5 * sum(comment.score + 1 for comments not by the submitter)].min
    order   = log10(max(|score + 1| + cpoints, 1))
    sign    = score <=> 0
    hotness = -(order * sign + created_at.to_f / HOTNESS_WINDOW).round(7)   # 22 hours

The stand-in keeps only a comment count, so each comment counts as a comment with score 0
(0.5 points), capped at the story's score as Lobsters does. Lower hotness ranks higher:
a story gains one rank "unit" per factor of ten in points, or by being 22 hours newer.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

HOTNESS_WINDOW = 60 * 60 * 22


def hotness(score: int, comment_count: int, created_at: datetime) -> float:
    """Lobsters' hotness of a story; ``created_at`` is UTC (naive values are taken as UTC)."""
    comment_points = min(score, comment_count * 0.5)
    order = math.log10(max(abs(score + 1) + comment_points, 1))
    sign = (score > 0) - (score < 0)
    epoch = created_at.replace(tzinfo=created_at.tzinfo or UTC).timestamp()
    return -round(order * sign + epoch / HOTNESS_WINDOW, 7)
