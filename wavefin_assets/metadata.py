"""Turning core results into Dagster metadata: previews, plots and report links."""

from __future__ import annotations

import base64
import io
import numbers
import re
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from matplotlib.figure import Figure


def figure_md(fig: Figure, title: str = "plot") -> dg.MetadataValue:
    """A matplotlib figure as an inline PNG in a markdown metadata entry (shown in the asset's page)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")


def image_md(path: str | Path, title: str = "plot") -> dg.MetadataValue:
    encoded = base64.b64encode(Path(path).read_bytes()).decode()
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")


def preview_md(df: pd.DataFrame, rows: int = 5) -> dg.MetadataValue:
    shown = pd.concat([df.head(rows), df.tail(rows)]) if len(df) > 2 * rows else df
    return dg.MetadataValue.md(shown.to_markdown() if _has_tabulate() else shown.to_string())


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def scalar_metadata(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Keep the plain numbers of a metrics dict (Dagster plots numeric metadata over materializations)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, bool):
            out[prefix + key] = value
        elif isinstance(value, numbers.Real) and value == value:
            out[prefix + key] = float(value)
    return out


def report_md(markdown_path: str | Path, max_inline_bytes: int | None = None) -> dg.MetadataValue:
    """A markdown report with its relative `figures/*.png` links inlined, so the plots show in the Dagster UI.

    ``max_inline_bytes`` caps the PNG bytes inlined (in order of appearance): a report with many figures would
    otherwise make a multi-megabyte metadata entry that every load of the asset page fetches. Figures past the
    cap keep their link and are named in a closing note (they are in the report folder and in MLflow).
    """
    markdown_path = Path(markdown_path)
    budget = [max_inline_bytes if max_inline_bytes is not None else float("inf")]
    skipped: list[str] = []

    def inline(match: re.Match) -> str:
        image = markdown_path.parent / match.group(2)
        if not image.is_file():
            return match.group(0)
        data = image.read_bytes()
        if len(data) > budget[0]:
            skipped.append(match.group(2))
            return f"_({match.group(1)}: `{match.group(2)}`, not inlined)_"
        budget[0] -= len(data)
        encoded = base64.b64encode(data).decode()
        return f"![{match.group(1)}](data:image/png;base64,{encoded})"

    text = re.sub(r"!\[([^\]]*)\]\(([^)]+\.png)\)", inline, markdown_path.read_text())
    if skipped:
        text += (f"\n\n_{len(skipped)} figure(s) not inlined to keep this entry small; they are next to the report "
                 f"({markdown_path.parent}) and in the MLflow run's artifacts._\n")
    return dg.MetadataValue.md(text)
