"""Team-draft interleaving (Radlinski, Kurup and Joachims, 2008): two rankers in one list.

Two rankings are merged the way captains pick teams: the team with fewer picks so far
(a coin decides a tie) adds its best item not already picked. Every shown item is credited
to the team that picked it, so a click on it is a vote for that ranker; a session whose
clicks went mostly to one team is a win for it. Comparing rankers this way needs far fewer
shoppers than an A/B split, because every shopper sees both.

``team_draft`` is pure and deterministic for a given ``rng``; ``preference`` turns session
outcomes into wins, losses, ties and an exact two-sided sign-test p-value.

Example:
    >>> import random
    >>> merged = team_draft(["a", "b", "c", "d"], ["b", "e", "a", "f"], limit=4, rng=random.Random(0))
    >>> [item for item, _ in merged]
    ['b', 'a', 'e', 'c']
    >>> [team for _, team in merged]
    [1, 0, 1, 0]
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

TEAMS = (0, 1)  # the first and the second ranker


def team_draft(
    first: Sequence[str], second: Sequence[str], *, limit: int, rng: random.Random
) -> list[tuple[str, int]]:
    """The two rankings interleaved by team draft: ``(item, team)`` pairs, at most ``limit``.

    Each item appears once and belongs to team 0 (``first``) or team 1 (``second``); after
    every pick the teams differ by at most one item. The merge stops when ``limit`` items
    are picked or either ranking has nothing left to give (as in the original algorithm:
    a ranker that ran out can no longer balance its team).

    Example:
        >>> team_draft(["x"], ["x", "y"], limit=5, rng=random.Random(0))
        [('x', 1)]
    """
    rankings = (list(dict.fromkeys(first)), list(dict.fromkeys(second)))
    picked: dict[str, int] = {}
    sizes = [0, 0]
    cursors = [0, 0]

    def next_of(team: int) -> str | None:
        ranking = rankings[team]
        while cursors[team] < len(ranking) and ranking[cursors[team]] in picked:
            cursors[team] += 1
        return ranking[cursors[team]] if cursors[team] < len(ranking) else None

    while len(picked) < limit:
        if next_of(0) is None or next_of(1) is None:
            break
        # The smaller team picks; a coin decides between equal teams.
        team = rng.randrange(2) if sizes[0] == sizes[1] else sizes.index(min(sizes))
        item = next_of(team)
        assert item is not None
        picked[item] = team
        sizes[team] += 1
    return list(picked.items())


@dataclass(frozen=True)
class Preference:
    """Which ranker the sessions preferred: wins of the first, of the second, ties.

    ``share`` is the first ranker's share of decided sessions (0.5: no preference);
    ``p_value`` is the exact two-sided sign test of wins against losses (ties left out).
    """

    wins: int
    losses: int
    ties: int
    share: float | None
    p_value: float

    @property
    def sessions(self) -> int:
        return self.wins + self.losses + self.ties

    def to_dict(self) -> dict[str, object]:
        return {
            "wins": self.wins,
            "losses": self.losses,
            "ties": self.ties,
            "share": self.share,
            "p_value": self.p_value,
        }


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided binomial p-value of ``wins`` against ``losses`` under p = 0.5.

    Example:
        >>> sign_test(9, 1)
        0.021484375
        >>> sign_test(3, 3)
        1.0
    """
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


def preference(outcomes: Iterable[tuple[int, int]]) -> Preference:
    """Wins, losses and ties from each session's (clicks for team 0, clicks for team 1).

    Sessions without a click say nothing and are left out.

    Example:
        >>> preference([(2, 0), (1, 1), (0, 1), (3, 1), (0, 0)])
        Preference(wins=2, losses=1, ties=1, share=0.6666666666666666, p_value=1.0)
    """
    wins = losses = ties = 0
    for first, second in outcomes:
        if first == second == 0:
            continue
        if first > second:
            wins += 1
        elif second > first:
            losses += 1
        else:
            ties += 1
    decided = wins + losses
    return Preference(
        wins=wins,
        losses=losses,
        ties=ties,
        share=wins / decided if decided else None,
        p_value=sign_test(wins, losses),
    )


__all__ = ["TEAMS", "Preference", "preference", "sign_test", "team_draft"]
