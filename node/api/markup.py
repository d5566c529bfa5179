"""The HTML pieces the dashboard's modules share: escaping and a province's label.

Every value that came from a node or a request passes ``text`` before it reaches a page.
"""

from __future__ import annotations

from html import escape

from node.trust.manifest import PROVINCES


def text(value: object) -> str:
    """``value`` as HTML text, quotes included, so it is safe in an attribute too."""
    return escape(str(value), quote=True)


def province_label(province: str) -> str:
    """``shanghai 上海`` for a known province, the escaped name otherwise."""
    chinese = PROVINCES.get(province, ("", ""))[1]
    return f"{text(province)} <span lang=zh>{text(chinese)}</span>" if chinese else text(province)
