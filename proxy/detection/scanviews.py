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

from ..lazyimport import lazy
from .normalize import Prepared
from .prefilter import (FOLDED_VIEWS, SENTENCE_ENDS, AnchorSet, occurrences,
                        prefilter_hit_state)

# Shorter views are searched whole: a search of a few sentences costs less than finding them.
SENTENCES_FROM = 600
# On a shorter view, a further required set is looked for only if it has at most this many
# strings: a search of the pattern costs about as much as sixteen substring tests there.
SHORT_VIEW_ANCHORS = 16
# numpy finds the sentence ends of long ASCII views; `aifw policy check` imports this module but
# never scans, so it does not import numpy (~70 ms): a start does (settings.compile_settings).
np = lazy("numpy", globals(), "np")
_ENDS = re.compile("[" + re.escape(SENTENCE_ENDS) + "]")
_END_CODES = tuple(map(ord, SENTENCE_ENDS))
# From this length a pattern's further required sets are looked for only where its rarest one
# is (``spans``), not first in the whole view (``has_any``): a substring search of a short view
# costs less than finding the stretches.
LONG_VIEW = 4096
NUMPY_FROM = 1024          # below, numpy's fixed cost is more than the pattern's walk
# A further required set is looked for in the whole view (and the answer kept for every pattern
# that shares it) when the stretches left to check hold at least this share of the sentences;
# else only in those stretches, one search of them joined.
WHOLE_VIEW_SHARE = 0.5


class ViewState:
    """One view: its text, whether it is folded and ASCII, and on a folded view its anchor pass
    (prefilter.prefilter_hit_state: the pids hit, how many pids that covers, the non-ASCII anchor
    ids present, how many ASCII anchors that covers and where the ASCII ones occur); its
    sentence stretches are computed on demand."""

    __slots__ = ("text", "folded", "ascii", "hit_set", "n_hits", "other_set",
                 "n_anchors", "where", "long", "_ends", "_sentences", "_holding", "_has")

    def __init__(self, text: str, folded: bool, state: tuple | None):
        self.text = text
        self.folded = folded
        self.ascii = text.isascii()
        self.long = len(text) >= LONG_VIEW
        if state is None:
            self.hit_set, self.n_hits, self.other_set, self.n_anchors, self.where = \
                frozenset(), 0, frozenset(), 0, {}
        else:
            self.hit_set, self.n_hits, self.other_set, self.n_anchors, self.where = state
        self._ends: list[int] | None = None
        self._sentences: dict[tuple, frozenset[int] | None] = {}
        self._holding: dict[tuple[str, ...], frozenset[int]] = {}
        self._has: dict[int, bool] = {}

    def has_any(self, anchors: AnchorSet) -> bool:
        """Whether one of ``anchors`` (a further required set, prefilter.requirement) occurs in
        this view; True on a view that is not folded, where a substring test says nothing, and
        for a long set on a short view, where searching the pattern costs less than looking."""
        key = id(anchors)
        got = self._has.get(key)
        if got is None:
            text = self.text
            got = self._has[key] = not self.folded \
                or (len(anchors) > SHORT_VIEW_ANCHORS and len(text) < SENTENCES_FROM) \
                or anchors.occurs_in(text)
        return got

    def sentence_ends(self) -> list[int]:
        if self._ends is None:
            text = self.text
            if not self.folded or len(text) < SENTENCES_FROM:
                self._ends = []
            elif len(text) >= NUMPY_FROM and text.isascii():
                # the ``_ENDS`` matches, found by numpy over the bytes (~6x faster on 20 KB)
                codes = np.frombuffer(text.encode("ascii"), np.uint8)
                found = codes == _END_CODES[0]
                for code in _END_CODES[1:]:
                    found |= codes == code
                self._ends = np.flatnonzero(found).tolist()
            else:
                self._ends = [m.start() for m in _ENDS.finditer(text)]
        return self._ends

    def _sentences_of(self, pf, by_id) -> frozenset[int] | None:
        """The indexes of the stretches holding an anchor of ``pf`` (None: unknown, any);
        ``by_id``: its ASCII anchors by id."""
        # by the anchors, not the object: patterns of a rule often share their rarest set
        key = (pf.anchors, pf.substring_ok)
        if key in self._sentences:
            return self._sentences[key]
        got: frozenset[int] | None = None
        # anchors registered after this view's anchor pass are not in ``where``
        if pf.substring_ok and pf.max_id < self.n_anchors:
            ends, where = self._ends, self.where
            # where the anchor pass found its ASCII anchors; the others looked for here
            got = frozenset(bisect.bisect_right(ends, at)
                            for i in by_id if i in where for at in where[i])
            if not self.ascii:
                got |= frozenset(bisect.bisect_right(ends, at)
                                 for a in pf.other_anchors for at in occurrences(a, self.text))
        self._sentences[key] = got
        return got

    def _sentences_holding(self, anchors: tuple[str, ...]) -> frozenset[int]:
        got = self._holding.get(anchors)
        if got is None:
            ends, text = self._ends, self.text
            got = self._holding[anchors] = frozenset(bisect.bisect_right(ends, at)
                                                   for a in anchors for at in occurrences(a, text))
        return got

    def _joined(self, keep: frozenset[int]) -> tuple[list[int], list[int], str]:
        """The stretches of ``keep`` (sorted), where each starts in the third, and those
        stretches joined by a sentence end into one string: an anchor of a pattern that matches
        no sentence end holds none (prefilter.within_sentences), so no occurrence there spans
        two stretches, and the character before a stretch's first one is a sentence end as in
        the view (or the view starts there), so a word-start anchor counts the same."""
        ends, text = self._ends, self.text
        order = sorted(keep)
        last = len(ends)
        starts: list[int] = []
        parts: list[str] = []
        at = 0
        for k in order:
            start = ends[k - 1] + 1 if k else 0
            end = ends[k] if k < last else len(text)
            starts.append(at)
            parts.append(text[start:end])
            at += end - start + 1
        return order, starts, SENTENCE_ENDS[0].join(parts)

    def spans(self, pf, by_id: dict, requirements) -> list[tuple[int, int]]:
        """(start, end) of the runs of consecutive stretches holding an anchor of the prefilter
        ``pf`` (its ASCII anchors by id: ``by_id``) and one of each of ``requirements``: empty
        when a set occurs nowhere in the view, so ``has_any`` need not be asked first."""
        ends = self.sentence_ends()
        keep = self._sentences_of(pf, by_id)
        if keep is not None and requirements \
                and len(keep) < WHOLE_VIEW_SHARE * (len(ends) + 1) \
                and not all(map(self._holding.__contains__, requirements)):
            # Few stretches left: the further sets are looked for in them only, first whether
            # each occurs there at all (most often one does not), then in which.
            order, starts, joined = self._joined(keep)
            for anchors in requirements:
                if not anchors.occurs_in(joined):
                    return []
            for anchors in requirements:
                if not keep:
                    break
                keep = keep & frozenset(order[bisect.bisect_right(starts, q) - 1]
                                        for a in anchors for q in occurrences(a, joined))
        else:
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


_UNSEEN = object()


class Views:
    """The ``ViewState`` of each view of one prepared text, built on first use."""

    __slots__ = ("prepared", "got")

    def __init__(self, prepared: Prepared):
        self.prepared = prepared
        self.got: dict[str, ViewState | None] = {}

    def __call__(self, view: str) -> ViewState | None:
        """None for an empty view."""
        # ``get``, not a caught KeyError: each view's first look-up misses, and raising costs more
        got = self.got.get(view, _UNSEEN)
        if got is not _UNSEEN:
            return got
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
