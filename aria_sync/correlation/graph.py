"""Union-find over candidate links, refusing merges that would put contradicting identifiers in one asset.

Records are plain integers (``rid``). Each component keeps, per conflict kind (serial, BIOS UUID,
...), the value codes of its members; a link is refused when both sides hold values of a checked
kind and the values differ, or (for weak links) when both sides already hold a record of the same
source. Accepted links are kept as the spanning forest that explains why each record joined.
"""

from __future__ import annotations

from collections.abc import Sequence

NO_VALUE = -1
MULTIPLE = -2


class LinkGraph:
    """Components of records with the identifier values and sources they contain."""

    def __init__(self, slots: Sequence[int], kinds: Sequence[str]) -> None:
        size = len(slots)
        self.parent = list(range(size))
        self.size = [1] * size
        self.slot_of = list(slots)
        self._slots: dict[int, set[int]] = {}
        self.kinds = tuple(kinds)
        self._codes: dict[str, list[int]] = {kind: [NO_VALUE] * size for kind in kinds}
        self._multi: dict[str, dict[int, set[int]]] = {kind: {} for kind in kinds}
        self.tree_edges: list[tuple[int, int, int]] = []

    def set_value(self, rid: int, kind: str, code: int) -> None:
        """Give record ``rid`` the value ``code`` of ``kind`` (before any link is made)."""
        self._codes[kind][rid] = code

    def find(self, rid: int) -> int:
        parent = self.parent
        while parent[rid] != rid:
            parent[rid] = parent[parent[rid]]
            rid = parent[rid]
        return rid

    def _values(self, kind: str, root: int) -> set[int]:
        code = self._codes[kind][root]
        if code == NO_VALUE:
            return set()
        if code == MULTIPLE:
            return self._multi[kind][root]
        return {code}

    def _component_slots(self, root: int) -> set[int]:
        return self._slots.get(root) or {self.slot_of[root]}

    def conflicts(self, root_a: int, root_b: int, kinds: Sequence[str], check_slots: bool) -> bool:
        """Whether joining the two components would contradict an identifier or a one-record-per-source rule."""
        for kind in kinds:
            code_a, code_b = self._codes[kind][root_a], self._codes[kind][root_b]
            if NO_VALUE in (code_a, code_b) or code_a == code_b:
                continue
            if self._values(kind, root_a).isdisjoint(self._values(kind, root_b)):
                return True
        if check_slots:
            return not self._component_slots(root_a).isdisjoint(self._component_slots(root_b))
        return False

    def link(self, a: int, b: int, reason: int, kinds: Sequence[str], check_slots: bool) -> bool:
        """Join the components of ``a`` and ``b`` unless they conflict; True when a new join happened."""
        root_a, root_b = self.find(a), self.find(b)
        if root_a == root_b or self.conflicts(root_a, root_b, kinds, check_slots):
            return False
        if self.size[root_a] < self.size[root_b]:
            root_a, root_b = root_b, root_a
        self.parent[root_b] = root_a
        self.size[root_a] += self.size[root_b]
        self._slots[root_a] = self._component_slots(root_a) | self._component_slots(root_b)
        self._slots.pop(root_b, None)
        for kind in self.kinds:
            codes = self._codes[kind]
            code_a, code_b = codes[root_a], codes[root_b]
            if code_b == NO_VALUE or code_a == code_b:
                continue
            if code_a == NO_VALUE:
                codes[root_a] = code_b
                if code_b == MULTIPLE:
                    self._multi[kind][root_a] = self._multi[kind].pop(root_b)
                continue
            merged = self._values(kind, root_a) | self._values(kind, root_b)
            self._multi[kind].pop(root_b, None)
            self._multi[kind][root_a] = merged
            codes[root_a] = MULTIPLE
        self.tree_edges.append((a, b, reason))
        return True

    def components(self) -> dict[int, list[int]]:
        """Root -> member rids in ascending order."""
        groups: dict[int, list[int]] = {}
        for rid in range(len(self.parent)):
            groups.setdefault(self.find(rid), []).append(rid)
        return groups
