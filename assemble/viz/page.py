"""One self-contained interactive HTML page of attention maps: inline CSS and JS, the weights
embedded as JSON, no network. Flip through kinds, layers and heads; hover tokens and cells.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from stackform.assemble.checkpoint import atomic_write

from .attention import AttentionMap
from .errors import VizError
from .page_assets import CSS, JS

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<h1 id="title">{title}</h1>
<div id="controls">
  <label>attention <select id="kind"></select></label>
  <label>layer <select id="layer"></select></label>
  <label>head <select id="head"></select></label>
  <label>view <select id="viewsel"><option value="matrix">matrix</option><option value="lines">lines</option></select></label>
  <span class="hint">arrow keys: layer / head; click a thumbnail; hover tokens and cells</span>
</div>
<div id="layout">
  <div id="thumbs"></div>
  <div><div id="where"></div><div id="legend"></div><div id="info"></div><div id="view"></div></div>
</div>
<script type="application/json" id="attention-data">{data}</script>
<script>{js}</script>
</body>
</html>
"""


def page_data(maps: list[AttentionMap], title: str) -> dict:
    """The JSON the page reads: per map its labels and weights in thousandths, per layer and head."""
    out = []
    for m in maps:
        quantized = (m.weights * 1000).round().int()  # [layers, heads, t, s]
        flat = quantized.flatten(2).tolist()  # [layers][heads][t * s]
        out.append({"kind": m.kind, "title": m.title, "layers": m.n_layers, "heads": m.n_heads,
                    "queries": m.queries, "keys": m.keys, "w": flat})
    return {"title": title, "maps": out}


def attention_page(maps: list[AttentionMap], title: str = "attention") -> str:
    """The page as a string."""
    if not maps:
        raise VizError("attention page: no attention maps to show")
    data = json.dumps(page_data(maps, title), separators=(",", ":"), ensure_ascii=True)
    data = data.replace("<", "\\u003c")  # no '</script>' or '<!--' can end the data early
    return TEMPLATE.format(title=html.escape(title), css=CSS, js=JS, data=data)


def write_attention_page(maps: list[AttentionMap], path: str | os.PathLike, title: str = "attention") -> Path:
    """Write the page to ``path`` atomically."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise VizError(f"--html {path}: the page needs an .html file name")
    if not path.parent.exists() and str(path.parent) not in ("", "."):
        raise VizError(f"--html {path}: the folder {path.parent} does not exist")
    atomic_write(path, attention_page(maps, title).encode("utf-8"))
    return path
