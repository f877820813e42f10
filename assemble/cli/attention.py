"""``stackform attention CKPT_OR_RUN --text TEXT [--tgt TEXT] --out attn.png [--html attn.html]``:
attention heatmaps (layers x heads, or one chosen) and an interactive page."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from stackform.assemble.checkpoint import load
from stackform.assemble.viz.attention import TITLES
from stackform.assemble.viz.errors import VizError
from stackform.assemble.viz.figure import check_image_path
from stackform.registry import printable


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CKPT_OR_RUN", help="a run folder with model.safetensors, or a .safetensors file")
    p.add_argument("--text", required=True, help="the input: the decoder's text, the encoder's, or the source")
    p.add_argument("--tgt", help="encoder-decoders: the target the decoder reads (default: its own greedy output)")
    p.add_argument("--max-new", type=int, default=0, metavar="N",
                   help="decoders: continue the text greedily by N tokens first (encoder-decoders: output length cap)")
    p.add_argument("--kind", choices=list(TITLES), help="only this attention (default: every kind the model has)")
    p.add_argument("--layer", type=int, metavar="L", help="only layer L in the picture (default: all)")
    p.add_argument("--head", type=int, metavar="H", help="only head H in the picture (default: all)")
    p.add_argument("--out", metavar="FILE", help="heatmap grid (.png, .svg or .pdf)")
    p.add_argument("--html", metavar="FILE", help="one self-contained interactive page (.html)")
    p.add_argument("--device", default="cpu", metavar="D", help="cpu (default), cuda, auto, ...")


def check_output(path: str, flag: str) -> None:
    """VizError unless ``path`` can be written: its folder exists, is a folder and is writable, and
    ``path`` is not a folder. Checked before the model loads, so a bad path costs nothing and prints nothing."""
    target = Path(path)
    folder = target.parent
    if not folder.exists():
        raise VizError(f"{flag} {path}: the folder {folder} does not exist")
    if not folder.is_dir():
        raise VizError(f"{flag} {path}: {folder} is a file, not a folder")
    if target.is_dir():
        raise VizError(f"{flag} {path}: is a folder; give a file name")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise VizError(f"{flag} {path}: the folder {folder} is not writable")


def run(args: argparse.Namespace) -> int:
    from stackform.assemble.cli.generate import pick_device, text_flag
    from stackform.assemble.viz.attention import text_attention
    from stackform.assemble.viz.heatmap import plot_attention
    from stackform.assemble.viz.page import write_attention_page
    from stackform.assemble.viz.select import select

    args.text, args.tgt = text_flag(args.text, "--text"), text_flag(args.tgt, "--tgt")
    if not args.out and not args.html:
        raise VizError("attention: nothing to write; give --out FILE.png and/or --html FILE.html")
    if args.out:
        check_image_path(args.out, "--out")
        check_output(args.out, "--out")
    if args.html:
        if Path(args.html).suffix.lower() not in (".html", ".htm"):
            raise VizError(f"--html {args.html}: the page needs an .html file name")
        check_output(args.html, "--html")
    model = load(args.checkpoint, device=pick_device(args.device))
    maps = text_attention(model, args.text, args.tgt, args.max_new)
    chosen = select(maps, args.kind, args.layer, args.head)  # checks --kind, --layer, --head
    for m, _, _ in chosen:
        print(printable(f"{m.title}: {m.n_layers} layers x {m.n_heads} heads x {len(m.queries)} queries x {len(m.keys)} keys"))
    name = f"{model.spec.name}: {args.text if len(args.text) <= 40 else args.text[:37] + '...'}"
    if args.out:
        print(printable(f"heatmaps: {plot_attention(maps, args.out, kind=args.kind, layer=args.layer, head=args.head)}"))
    if args.html:
        shown = [m for m, _, _ in chosen] if args.kind else maps
        print(printable(f"page: {write_attention_page(shown, args.html, name)}"))
    return 0
