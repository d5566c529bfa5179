"""The dashboard's history and to-do panels, drawn from nodes' feeds (``GET /v1/dashboard``).

Rules kept here:
- A directed link's history comes from both of its ends: what was sent, the backlog, its
  oldest message and the delivery latency from the sender; what was received and refused
  from the receiver. A node's cases come from the node itself.
- A feed is another process's answer: only lists of finite numbers (or null) are drawn, at
  most an hour's worth (``CAPACITY``) of each; anything else draws as "no samples", never an
  error.
- The overdue cases name the case id and the matter only; the dead letters the outbox seq,
  peer, type and code, and the command that retries each on that node's machine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from node.api.markup import province_label, text
from node.api.sparkline import sparkline
from node.runtime.history import CAPACITY

SENDER_SERIES = (
    ("sent", "sent"),
    ("backlog", "backlog"),
    ("oldest_s", "oldest s"),
    ("p50_s", "p50 ms"),
    ("p99_s", "p99 ms"),
)
"""(series, label) of a link drawn from its sender's feed, in the order shown."""
RECEIVER_SERIES = (("received", "received"), ("refused", "refused"))
"""(series, label) of a link drawn from its receiver's feed."""
NODE_SERIES = (
    ("cases_opened", "cases opened"),
    ("cases_concluded", "concluded"),
    ("cases_overdue", "overdue"),
)
MILLISECONDS = frozenset({"p50_s", "p99_s"})
PER_INTERVAL = frozenset({"sent", "received", "refused", "cases_opened", "cases_concluded"})


def _history(feed: Mapping[str, Any] | None) -> Mapping[str, Any]:
    history = feed.get("history") if isinstance(feed, Mapping) else None
    return history if isinstance(history, Mapping) else {}


def samples(
    feed: Mapping[str, Any] | None, name: str, peer: str | None = None
) -> list[float | None]:
    """Series ``name`` of the node (or of its link with ``peer``) in ``feed``, oldest first:
    the finite numbers kept, anything else (JSON's NaN and Infinity too) read as a missing
    sample; [] when there is none."""
    history = _history(feed)
    peers = history.get("peers")
    if peer is None:
        group = history.get("node")
    else:
        group = peers.get(peer) if isinstance(peers, Mapping) else None
    values = group.get(name) if isinstance(group, Mapping) else None
    if not isinstance(values, list):
        return []
    return [
        float(v)
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        else None
        for v in values[-CAPACITY:]
    ]


def _shown(name: str, value: float) -> str:
    if name in MILLISECONDS:
        return f"{value * 1000:.1f}"
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def _span(feed: Mapping[str, Any] | None, count: int, per_interval: bool) -> str:
    """``last 60 min, per 5 s``: the time the samples cover, and what one counts."""
    interval = _history(feed).get("interval_seconds")
    if not isinstance(interval, int | float) or isinstance(interval, bool) or interval <= 0:
        return f"last {count} samples"
    seconds = count * interval
    span = f"last {seconds / 60:.0f} min" if seconds >= 60 else f"last {seconds:g} s"
    return f"{span}, per {interval:g} s" if per_interval else span


def spark_row(
    feed: Mapping[str, Any] | None, name: str, label: str, where: str, peer: str | None
) -> str:
    """One row: the label, the sparkline (its hover text says what it covers) and the latest
    sample."""
    values = samples(feed, name, peer)
    present = [v for v in values if v is not None]
    latest = _shown(name, present[-1]) if present else "–"
    highest = _shown(name, max(present)) if present else "–"
    span = _span(feed, len(values), name in PER_INTERVAL)
    title = f"{label} {where}, {span}: latest {latest}, highest {highest}"
    return (
        f'<tr data-series="{text(name)}"><th>{text(label)}</th>'
        f"<td>{sparkline(values, title=title)}</td><td>{text(latest)}</td></tr>"
    )


def link_history(
    sender_feed: Mapping[str, Any] | None,
    receiver_feed: Mapping[str, Any] | None,
    sender: str,
    receiver: str,
) -> str:
    """The sparklines of the directed link ``sender`` → ``receiver``."""
    where = f"{sender}→{receiver}"
    rows = [spark_row(sender_feed, n, label, where, receiver) for n, label in SENDER_SERIES]
    rows += [spark_row(receiver_feed, n, label, where, sender) for n, label in RECEIVER_SERIES]
    return f'<table class="sparks">{"".join(rows)}</table>'


def node_history(feed: Mapping[str, Any] | None, province: str) -> str:
    """The sparklines of one node's cases."""
    rows = [spark_row(feed, n, label, f"at {province}", None) for n, label in NODE_SERIES]
    return f'<table class="sparks">{"".join(rows)}</table>'


def _items(feed: Mapping[str, Any] | None, key: str) -> list[Mapping[str, Any]]:
    listed = feed.get(key) if isinstance(feed, Mapping) else None
    return [i for i in listed if isinstance(i, Mapping)] if isinstance(listed, list) else []


def _total(feed: Mapping[str, Any] | None, key: str, shown: int) -> int:
    total = feed.get(key) if isinstance(feed, Mapping) else None
    return total if isinstance(total, int) and not isinstance(total, bool) else shown


def render_overdue(feeds: Sequence[tuple[str, Mapping[str, Any] | None]]) -> str:
    """Every node's overdue cases: id, role, peer, matter and when it was due."""
    rows, more = [], 0
    for node, feed in feeds:
        items = _items(feed, "overdue_cases")
        more += max(0, _total(feed, "overdue_total", len(items)) - len(items))
        for case in items:
            name = case.get("matter_name")
            matter = f"{text(name)} " if name else ""
            rows.append(
                f"<tr><td>{province_label(node)}</td><td><code>{text(case.get('case_id'))}</code>"
                f"</td><td>{text(case.get('role'))}</td>"
                f"<td>{province_label(str(case.get('peer')))}</td>"
                f'<td>{matter}<span class="muted">{text(case.get("matter_code"))}</span></td>'
                f"<td>{text(case.get('due_at'))}</td></tr>"
            )
    if not rows:
        return '<p class="muted">No case is past its promised time.</p>'
    tail = f'<p class="muted">and {more} more</p>' if more else ""
    return (
        '<table class="overdue"><thead><tr><th>node</th><th>case</th><th>role</th><th>peer</th>'
        f"<th>matter</th><th>due</th></tr></thead><tbody>{''.join(rows)}</tbody></table>{tail}"
    )


def render_dead_letters(feeds: Sequence[tuple[str, Mapping[str, Any] | None]]) -> str:
    """Every node's dead letters, each with the command that puts it back in line."""
    rows, more = [], 0
    for node, feed in feeds:
        items = _items(feed, "dead_letters")
        more += max(0, _total(feed, "dead_letters_total", len(items)) - len(items))
        for item in items:
            rows.append(
                f"<tr><td>{province_label(node)}</td><td>{text(item.get('seq'))}</td>"
                f"<td>{province_label(str(item.get('peer')))}</td><td>{text(item.get('type'))}</td>"
                f"<td>{text(item.get('dead_at'))}</td><td>{text(item.get('code'))}</td>"
                f"<td><code>{text(item.get('retry'))}</code></td></tr>"
            )
    if not rows:
        return '<p class="muted">No dead letters.</p>'
    tail = f'<p class="muted">and {more} more</p>' if more else ""
    return (
        '<table class="dead-letters"><thead><tr><th>node</th><th>seq</th><th>to</th><th>type</th>'
        "<th>parked at</th><th>code</th><th>retry with</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>{tail}"
    )
