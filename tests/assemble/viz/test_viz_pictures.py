"""Pictures are produced and non-trivial: heatmap PNG/SVG, the self-contained HTML page, the
architecture diagram."""

from __future__ import annotations

import json
import re

import pytest

from stackform.assemble import assemble
from stackform.assemble.viz import VizError, text_attention
from stackform.assemble.viz.architecture import architecture
from stackform.assemble.viz.diagram import draw_architecture
from stackform.assemble.viz.heatmap import plot_attention
from stackform.assemble.viz.page import attention_page, write_attention_page
from tiny import tiny_model, tiny_spec

PNG = b"\x89PNG\r\n\x1a\n"


def _png_size(data: bytes) -> tuple[int, int]:
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_heatmap_grid_png_and_svg(tmp_path):
    maps = text_attention(tiny_model("encoder_decoder", n_layers=2), "12", tgt="ab")
    grid = plot_attention(maps, tmp_path / "all.png").read_bytes()
    one = plot_attention(maps, tmp_path / "one.png", kind="cross", layer=1, head=0).read_bytes()
    assert grid.startswith(PNG) and one.startswith(PNG)
    (gw, gh), (ow, oh) = _png_size(grid), _png_size(one)
    assert gh > 2 * oh and min(gw, ow) > 150  # 3 kinds x 2 layers x 2 heads vs one panel
    svg = plot_attention(maps, tmp_path / "all.svg").read_text()
    assert svg.count("<image") == 3 * 2 * 2 + 3  # one raster per panel, one colour bar per kind
    for label in ("encoder self-attention", "decoder self-attention", "encoder-decoder attention", "&lt;bos&gt;"):
        assert label in svg


def test_heatmap_checks_the_choice(tmp_path):
    maps = text_attention(tiny_model("decoder"), "hi")
    with pytest.raises(VizError, match=r"--layer 2: out of range; the decoder self-attention has 2 layers \(0..1\)"):
        plot_attention(maps, tmp_path / "x.png", layer=2)
    with pytest.raises(VizError, match=r"--head -1: out of range"):
        plot_attention(maps, tmp_path / "x.png", head=-1)
    with pytest.raises(VizError, match="this model has no such attention"):
        plot_attention(maps, tmp_path / "x.png", kind="cross")
    with pytest.raises(VizError, match="unknown picture format '.jpg'"):
        plot_attention(maps, tmp_path / "x.jpg")
    assert not list(tmp_path.iterdir())


def test_html_page_is_self_contained(tmp_path):
    maps = text_attention(tiny_model("encoder_decoder"), "1<2", tgt="</script>")
    path = write_attention_page(maps, tmp_path / "attn.html", "tiny")
    page = path.read_text()
    assert page.count("<script") == 2 and page.count("</script>") == 2  # the target text cannot end the data
    assert set(re.findall(r"https?://[^\s'\"`)]+", page)) <= {"http://www.w3.org/2000/svg"}  # the SVG namespace only
    assert not re.search(r"<link|@import|src=|url\(|fetch\(|XMLHttpRequest", page)
    data = json.loads(page.split('id="attention-data">')[1].split("</script>")[0])
    assert [m["kind"] for m in data["maps"]] == ["encoder", "decoder", "cross"]
    cross = data["maps"][2]
    assert cross["queries"][1:] == list("</script>") and cross["keys"] == ["1", "<", "2"]
    assert len(cross["w"]) == 2 and len(cross["w"][0]) == 2 and len(cross["w"][0][0]) == 10 * 3
    assert all(abs(sum(row[i:i + 3]) - 1000) <= 3 for row in cross["w"][0] for i in range(0, 30, 3))
    for needed in ("addEventListener('keydown'", "onmouseenter", "drawLines", "drawMatrix"):
        assert needed in page
    with pytest.raises(VizError, match="needs an .html file name"):
        write_attention_page(maps, tmp_path / "attn.png")
    with pytest.raises(VizError, match="no attention maps"):
        attention_page([])


@pytest.mark.parametrize("kind", ["decoder", "encoder", "encoder_decoder"])
def test_architecture_diagram(tmp_path, kind):
    spec = tiny_spec(kind, n_layers=3, layers=[{"repeat": 2}, {"repeat": 1, "attention": {"type": "gqa", "n_kv_heads": 1}}])
    svg = draw_architecture(assemble(spec, device="meta"), tmp_path / "arch.svg").read_text()
    assert svg.startswith("<?xml") and len(svg) > 10_000
    texts = re.findall(r"<text[^>]*>([^<]*)<", svg)
    joined = " ".join(texts)
    assert "2x" in texts and "1x" in texts and "gqa n_kv_heads=1" in joined and "final layernorm" in joined
    assert joined.count("layernorm") >= 3  # norms drawn around each sublayer (pre-norm) and at the end
    if kind == "encoder_decoder":
        assert "memory" in texts and joined.count("cross-attention") == 2  # one per decoder layer group
        assert "encoder (masks: padding)" in texts and "decoder (masks: causal)" in texts
    else:
        assert "cross-attention" not in joined
    png = draw_architecture(assemble(spec, device="meta"), tmp_path / "arch.png").read_bytes()
    assert png.startswith(PNG) and len(png) > 10_000


def test_diagram_shows_post_norm_and_rotary(tmp_path):
    spec = tiny_spec("decoder", residual="post", positional="rope")
    svg = draw_architecture(assemble(spec, device="meta"), tmp_path / "arch.svg").read_text()
    joined = " ".join(re.findall(r"<text[^>]*>([^<]*)<", svg))
    assert "positional: rope (inside attention)" in joined and "final layernorm" not in joined


def test_diagram_keeps_layers_apart_that_differ_in_a_third_parameter():
    # bias and qk_norm already differ from the defaults: a per-layer window must still split the group
    attention = {"type": "mha", "bias": False, "qk_norm": True}
    spec = tiny_spec("decoder", n_layers=3, attention=attention,
                     layers=[{"repeat": 2}, {"repeat": 1, "attention": {**attention, "window": 4}}])
    groups = architecture(assemble(spec, device="meta"))[0].groups
    assert [(g.first, g.count) for g in groups] == [(0, 2), (2, 1)]
    assert groups[1].sublayers[0] == ("self-attention", "mha bias=False qk_norm=True window=4")
