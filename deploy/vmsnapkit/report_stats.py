"""What the report's pictures show, computed from verify's rows: compliance per subscription and per resource
group (the worst few plus one "others" bar when there are many), last-backup ages binned against the age
rule, and the extension versions in the fleet. Plain data, so the numbers can be checked without a browser."""

import collections
import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

from . import verify  # module import: verify imports the report, which imports this


@dataclass
class Group:
    """One bar of a compliance chart."""

    key: str
    label: str
    passed: int = 0
    failed: int = 0
    members: int = 1  # groups folded into this bar ("others")

    @property
    def total(self):
        return self.passed + self.failed


def by_subscription(rows, top=10):
    """(the `top` worst subscriptions, one Group folding the rest or None)."""
    groups = {}
    for r in rows:
        sub = r.get("subscriptionId") or ""
        g = groups.setdefault(sub.lower(), Group(sub.lower(), sub))
        _count(g, r)
    return _worst(groups.values(), top)


def by_resource_group(rows, top=10):
    """(the `top` worst resource groups, one Group folding the rest or None). Groups are (subscription, name):
    the same name in two subscriptions is two groups, labelled with a short subscription id."""
    groups = {}
    for r in rows:
        sub, rg = (r.get("subscriptionId") or "").lower(), r.get("resourceGroup") or ""
        g = groups.setdefault((sub, rg.lower()), Group(f"{sub}/{rg.lower()}", rg))
        _count(g, r)
    names = collections.Counter(key[1] for key in groups)
    for (sub, rg), g in groups.items():
        if names[rg] > 1:
            g.label = f"{g.label} ({sub[:8]})"
    return _worst(groups.values(), top)


def _worst(groups, top):
    """The `top` worst groups and one "others" Group for the rest (None when one more bar would do)."""
    ordered = sorted(groups, key=_worst_first)
    if len(ordered) <= top + 1:
        return ordered, None
    rest = ordered[top:]
    others = Group("others", "", sum(g.passed for g in rest), sum(g.failed for g in rest), len(rest))
    return ordered[:top], others


def _count(group, row):
    if row["passed"]:
        group.passed += 1
    else:
        group.failed += 1


def _worst_first(g):
    return (-g.failed, -(g.failed / g.total if g.total else 0), g.label.lower())


@dataclass
class Histogram:
    """Last-backup ages in equal bins from 0 to twice the rule, one overflow bin, and the VMs without any."""

    edges: List[float]  # bin i holds edges[i] <= age < edges[i+1]; the last bin has no upper edge
    counts: List[int]
    threshold: Optional[float]  # the rule in hours, an edge of the bins; None without --max-backup-age
    no_backup: int

    @property
    def bins(self) -> List[Tuple[float, Optional[float], int]]:
        uppers = self.edges[1:] + [None]
        return list(zip(self.edges, uppers, self.counts))


def age_histogram(rows, max_age_hours=None, bins_to_rule=8):
    """Bins of width rule/8 up to 2x the rule, then "older"; 24 h stands in as the scale without a rule."""
    scale = max_age_hours if max_age_hours else 24.0
    width = scale / bins_to_rule
    edges = [round(i * width, 4) for i in range(2 * bins_to_rule + 1)]
    counts = [0] * len(edges)
    no_backup = 0
    for r in rows:
        age = r.get("backupAgeHours")
        if age is None:
            no_backup += 1
            continue
        index = min(len(edges) - 1, max(0, int(math.floor(age / width))))
        counts[index] += 1
    return Histogram(edges, counts, max_age_hours or None, no_backup)


@dataclass
class Version:
    label: Optional[str]  # "1.9"; None for the VMs without the extension
    count: int
    ok: bool  # meets --min-version (always True without one); False for "not installed"


def versions(rows, min_version=None):
    """Extension versions, newest first, the VMs without the extension last (label None)."""
    counts = collections.Counter(
        None if r.get("extensionState") == "Missing" else (r.get("extensionVersion") or "?") for r in rows
    )
    missing = counts.pop(None, 0)
    floor = verify.version_tuple(min_version) if min_version else ()
    ordered = sorted(counts.items(), key=lambda vn: (verify.version_tuple(vn[0]), vn[0]), reverse=True)
    out = [Version(v, n, not floor or verify.version_tuple(v) >= floor) for v, n in ordered]
    if missing:
        out.append(Version(None, missing, False))
    return out
