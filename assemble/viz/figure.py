"""Saving matplotlib figures without pyplot's global state: the format follows the file's extension."""

from __future__ import annotations

import io
import os
from pathlib import Path

from stackform.assemble.checkpoint import atomic_write

from .errors import VizError

FORMATS = ("png", "svg", "pdf")


def check_image_path(path: str | os.PathLike, flag: str) -> Path:
    """``path`` with a .png, .svg or .pdf extension, in a folder that exists."""
    path = Path(path)
    ext = path.suffix.lower().lstrip(".")
    if ext not in FORMATS:
        raise VizError(f"{flag} {path}: unknown picture format '{path.suffix}'; use .png, .svg or .pdf")
    if not path.parent.exists() and str(path.parent) not in ("", "."):
        raise VizError(f"{flag} {path}: the folder {path.parent} does not exist")
    return path


def new_figure(width: float, height: float, layout: str | None = None):
    """A Figure with an Agg canvas (no pyplot, no global state); ``layout="constrained"`` packs it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write ``fig`` atomically as PNG, SVG or PDF (by extension)."""
    import matplotlib

    path = check_image_path(path, "output")
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # SVG text stays text: small, searchable
        fig.savefig(buffer, format=path.suffix.lower().lstrip("."), dpi=dpi, bbox_inches="tight",
                    metadata={"Date": None} if path.suffix.lower() == ".svg" else None)
    atomic_write(path, buffer.getvalue())
    return path
