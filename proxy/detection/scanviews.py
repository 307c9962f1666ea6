"""The views of one text as ``matcher.match`` reads them: each view looked up, and its prefilter
anchors found, once per text rather than once per rule; and for long views, the stretches
between sentence ends that hold a literal of every required set of a pattern.

Why the stretches: a pattern that cannot match a sentence end (prefilter.within_sentences)
matches inside one stretch, so it need only be searched in the stretches that hold a literal of
each of its required sets (prefilter.pattern_requirements). On a 20 KB document whose every
sentence holds "order", "you" or "new" somewhere but none holds all three, "you ... new ...
orders" is then not searched at all.
"""
from __future__ import annotations

import bisect
import re

from .normalize import Prepared
from .prefilter import FOLDED_VIEWS, SENTENCE_ENDS, occurrences, occurs, prefilter_hit_state

# Shorter views are searched whole: a search of a few sentences costs less than finding them.
SENTENCES_FROM = 600
# On a shorter view, a further required set is looked for only if it has at most this many
# strings: a search of the pattern costs about as much as sixteen substring tests there.
SHORT_VIEW_ANCHORS = 16
_ENDS = re.compile("[" + re.escape(SENTENCE_ENDS) + "]")


class ViewState:
    """One view: its text, whether it is folded and ASCII, and on a folded view its anchor pass
    (prefilter.prefilter_hit_state: the pids hit, how many pids that covers, the non-ASCII and
    ASCII anchor ids present, how many ASCII anchors that covers); its sentence stretches are
    computed on demand."""

    __slots__ = ("text", "folded", "ascii", "hit_set", "n_hits", "other_set", "present",
                 "n_anchors", "_ends", "_where", "_has")

    def __init__(self, text: str, folded: bool, state: tuple | None):
        self.text = text
        self.folded = folded
        self.ascii = text.isascii()
        if state is None:
            self.hit_set, self.n_hits, self.other_set, self.present, self.n_anchors = \
                frozenset(), 0, frozenset(), frozenset(), 0
        else:
            self.hit_set, self.n_hits, self.other_set, self.present, self.n_anchors = state
        self._ends: list[int] | None = None
        self._where: dict[int, frozenset[int] | None] = {}
        self._has: dict[int, bool] = {}

    def has_any(self, anchors: tuple[str, ...]) -> bool:
        """Whether one of ``anchors`` (a further required set, prefilter.requirement) occurs in
        this view; True on a view that is not folded, where a substring test says nothing, and
        for a long set on a short view, where searching the pattern costs less than looking."""
        key = id(anchors)
        got = self._has.get(key)
        if got is None:
            text = self.text
            got = self._has[key] = not self.folded \
                or (len(anchors) > SHORT_VIEW_ANCHORS and len(text) < SENTENCES_FROM) \
                or any(occurs(a, text) for a in anchors)
        return got

    def sentence_ends(self) -> list[int]:
        if self._ends is None:
            self._ends = [m.start() for m in _ENDS.finditer(self.text)] \
                if self.folded and len(self.text) >= SENTENCES_FROM else []
        return self._ends

    def _sentences_of(self, pf, by_id) -> frozenset[int] | None:
        """The indexes of the stretches holding an anchor of ``pf`` (None: unknown, any);
        ``by_id``: its ASCII anchors by id."""
        key = id(pf)
        if key in self._where:
            return self._where[key]
        got: frozenset[int] | None = None
        # anchors registered after this view's anchor pass are not in ``present``
        if pf.substring_ok and pf.max_id < self.n_anchors:
            ends = self._ends
            anchors = [by_id[i] for i in self.present if i in by_id]
            if not self.ascii:
                anchors += pf.other_anchors
            got = frozenset(bisect.bisect_right(ends, at)
                            for a in anchors for at in occurrences(a, self.text))
        self._where[key] = got
        return got

    def _sentences_holding(self, anchors: tuple[str, ...]) -> frozenset[int]:
        key = id(anchors)
        got = self._where.get(key)
        if got is None:
            ends, text = self._ends, self.text
            got = self._where[key] = frozenset(bisect.bisect_right(ends, at)
                                               for a in anchors for at in occurrences(a, text))
        return got

    def spans(self, pf, by_id: dict, requirements) -> list[tuple[int, int]]:
        """(start, end) of the runs of consecutive stretches holding an anchor of the prefilter
        ``pf`` (its ASCII anchors by id: ``by_id``) and one of each of ``requirements``."""
        ends = self.sentence_ends()
        keep = self._sentences_of(pf, by_id)
        for anchors in requirements:
            if keep is not None and not keep:
                break
            where = self._sentences_holding(anchors)
            keep = where if keep is None else keep & where
        if keep is not None and not keep:
            return []
        if keep is None:
            return [(0, len(self.text))]
        out: list[tuple[int, int]] = []
        last = len(ends)
        for k in sorted(keep):
            start = ends[k - 1] + 1 if k else 0
            end = ends[k] if k < last else len(self.text)
            if out and out[-1][1] == start - 1:      # the next stretch: one search for both
                out[-1] = (out[-1][0], end)
            else:
                out.append((start, end))
        return out


class Views:
    """The ``ViewState`` of each view of one prepared text, built on first use."""

    __slots__ = ("prepared", "got")

    def __init__(self, prepared: Prepared):
        self.prepared = prepared
        self.got: dict[str, ViewState | None] = {}

    def __call__(self, view: str) -> ViewState | None:
        """None for an empty view."""
        try:
            return self.got[view]
        except KeyError:
            pass
        prepared = self.prepared
        text = prepared.view(view)
        if not text:
            got = None
        elif view in FOLDED_VIEWS:
            got = ViewState(text, True, prepared.anchor_hits(view, prefilter_hit_state))
        else:
            got = ViewState(text, False, None)
        self.got[view] = got
        return got
