"""Turning core results into Dagster metadata: previews, plots and report links.

Why thumbnails: every metadata entry is stored in Dagster's event log (an output's metadata twice: in the
STEP_OUTPUT and the ASSET_MATERIALIZATION event) and fetched by every load of the asset page, so a
report with full-size PNGs inlined as base64 made 533 KB events. Inline images here are downscaled,
palette-quantized thumbnails of at most ``THUMBNAIL_MAX_BYTES`` each, next to the path of the full-size PNG
(kept on disk and in MLflow). Large markdown (a report) goes through :func:`add_report_metadata`, which attaches
it to the materialization only.
"""

from __future__ import annotations

import base64
import io
import numbers
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
import pandas as pd
import pyarrow as pa

if TYPE_CHECKING:  # matplotlib loads only when a step draws a figure
    from matplotlib.figure import Figure

#: Upper bound of one inline thumbnail's PNG bytes (base64 adds a third in the stored markdown).
THUMBNAIL_MAX_BYTES = 30_000
#: Widest thumbnail, in pixels: the asset page shows metadata images about this wide.
THUMBNAIL_MAX_WIDTH = 640
#: Default bound of all inlined thumbnail bytes of one report entry; figures past it are listed as paths.
REPORT_INLINE_BUDGET = 200_000


def thumbnail_png(png: bytes, max_bytes: int = THUMBNAIL_MAX_BYTES, max_width: int = THUMBNAIL_MAX_WIDTH) -> bytes:
    """A PNG no larger than ``max_bytes``: downscaled to ``max_width`` and quantized to a 64-colour palette,
    then shrunk by 20% steps until it fits (plots are flat colours, so this costs little legibility)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as source:
        image = source.convert("RGB")  # palette quantization needs RGB; plots have no useful alpha
    width = min(max_width, image.width)
    while True:
        thumb = image.copy()
        thumb.thumbnail((width, max(1, round(image.height * width / image.width))))
        buffer = io.BytesIO()
        thumb.quantize(colors=64).save(buffer, format="PNG", optimize=True)
        data = buffer.getvalue()
        if len(data) <= max_bytes or width <= 16:
            return data
        width = int(width * 0.8)


def _inline_png(png: bytes, title: str) -> str:
    return f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"


def figure_md(fig: Figure, title: str = "plot") -> dg.MetadataValue:
    """A matplotlib figure as an inline PNG thumbnail (≤ ``THUMBNAIL_MAX_BYTES``) in a markdown entry."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return dg.MetadataValue.md(_inline_png(thumbnail_png(buffer.getvalue()), title))


def image_md(path: str | Path, title: str = "plot") -> dg.MetadataValue:
    """A PNG file as an inline thumbnail (≤ ``THUMBNAIL_MAX_BYTES``) followed by the full-size file's path."""
    path = Path(path)
    thumb = thumbnail_png(path.read_bytes())
    return dg.MetadataValue.md(f"{_inline_png(thumb, title)}\n\nFull size: `{path}`")


def preview_md(df: pd.DataFrame, rows: int = 5) -> dg.MetadataValue:
    shown = pd.concat([df.head(rows), df.tail(rows)]) if len(df) > 2 * rows else df
    return dg.MetadataValue.md(shown.to_markdown() if _has_tabulate() else shown.to_string())


def table_metadata(table: pd.DataFrame | pa.Table) -> dict[str, Any]:
    """Dagster's standard table metadata, ``dagster/row_count`` and ``dagster/column_schema``.

    The UI shows these on the asset page (row count plotted over materializations, the columns with their types)
    and the catalog searches them. A DataFrame's named index (``timestamp``) is listed as the first column,
    because it is stored as one in Parquet.
    """
    if isinstance(table, pa.Table):
        columns = [dg.TableColumn(field.name, str(field.type)) for field in table.schema]
        rows = table.num_rows
    else:
        names = [n for n in table.index.names if n is not None]
        index = [dg.TableColumn(str(n), str(table.index.get_level_values(n).dtype)) for n in names]
        columns = index + [dg.TableColumn(str(name), str(dtype)) for name, dtype in table.dtypes.items()]
        rows = len(table)
    return {"dagster/row_count": int(rows), "dagster/column_schema": dg.TableSchema(columns=columns)}


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
    """A markdown report with its relative `*.png` links replaced by inline thumbnails, so the plots show in the
    Dagster UI, each followed by the full-size figure's path.

    ``max_inline_bytes`` caps the thumbnail bytes inlined (in order of appearance; default
    ``REPORT_INLINE_BUDGET``): a report with many figures would otherwise make a multi-megabyte metadata entry.
    Figures past the cap keep their path and are counted in a closing note (they are in the report folder and
    in MLflow).
    """
    markdown_path = Path(markdown_path)
    budget = [REPORT_INLINE_BUDGET if max_inline_bytes is None else max_inline_bytes]
    skipped: list[str] = []

    def inline(match: re.Match) -> str:
        title, link = match.group(1), match.group(2)
        image = markdown_path.parent / link
        if not image.is_file():
            return match.group(0)
        thumb = thumbnail_png(image.read_bytes())
        if len(thumb) > budget[0]:
            skipped.append(link)
            return f"_({title}: `{image}`, not inlined)_"
        budget[0] -= len(thumb)
        return f"{_inline_png(thumb, title)}\n_Full size: `{image}`_"

    text = re.sub(r"!\[([^\]]*)\]\(([^)]+\.png)\)", inline, markdown_path.read_text())
    if skipped:
        text += (f"\n\n_{len(skipped)} figure(s) not inlined to keep this entry small; they are next to the report "
                 f"({markdown_path.parent}) and in the MLflow run's artifacts._\n")
    return dg.MetadataValue.md(text)


def add_report_metadata(
    context: dg.AssetExecutionContext, markdown_path: str | Path, key: str = "report",
    max_inline_bytes: int | None = None,
) -> None:
    """Attach a report's markdown (see :func:`report_md`) to this materialization only.

    Metadata returned in ``dg.Output(metadata=...)`` is stored twice, in the STEP_OUTPUT event and in the
    ASSET_MATERIALIZATION event; ``context.add_asset_metadata`` reaches only the materialization, so the large
    entry is stored once per materialization and still shows on the asset's page.
    """
    context.add_asset_metadata({key: report_md(markdown_path, max_inline_bytes=max_inline_bytes)})
