"""Server-rendered SVG bar charts: no chart library, no script, readable without CSS.

Each chart is an `<svg role="img">` with a title and a text description, every bar carries
its label and value as text, and colours come from classes in our stylesheet (the CSP forbids
inline styles; SVG presentation attributes and classes are fine).
"""

from __future__ import annotations

import hashlib
from typing import Sequence

from markupsafe import Markup, escape

ROW = 26
LABEL_WIDTH = 190
VALUE_WIDTH = 80


def _fmt(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.2f}"


def bar_chart(title: str, bars: Sequence[tuple[str, float]], width: int = 620, css_class: str = "",
              label_width: int = LABEL_WIDTH) -> Markup:
    """A horizontal bar chart; bars scale to the largest value (all zero draws empty bars)."""
    chart_id = "chart-" + hashlib.sha256(title.encode()).hexdigest()[:10]
    peak = max((v for _, v in bars), default=0) or 1
    span = width - label_width - VALUE_WIDTH
    height = ROW * max(len(bars), 1) + 8
    desc = "; ".join(f"{label}: {_fmt(value)}" for label, value in bars) or "no data"
    parts = [
        f'<svg class="chart {escape(css_class)}" role="img" aria-labelledby="{chart_id}-t {chart_id}-d" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
        f'<desc id="{chart_id}-d">{escape(desc)}</desc>',
    ]
    if not bars:
        parts.append(f'<text class="chart-empty" x="0" y="18">no data yet</text>')
    for i, (label, value) in enumerate(bars):
        y = 4 + i * ROW
        length = max(0.0, value) / peak * span
        parts.append(
            f'<g class="bar-row"><text class="chart-label" x="{label_width - 8}" y="{y + 15}" text-anchor="end">'
            f'{escape(label)}</text>'
            f'<rect class="bar bar-{i % 4}" x="{label_width}" y="{y + 2}" width="{length:.1f}" height="{ROW - 8}" rx="2">'
            f'<title>{escape(label)}: {_fmt(value)}</title></rect>'
            f'<text class="chart-value" x="{label_width + length + 6:.1f}" y="{y + 15}">{_fmt(value)}</text></g>')
    parts.append("</svg>")
    return Markup("".join(parts))
