"""The Gradio page: a photo in; the top-5 addresses (or "not from this city"), a map and LLaVA-IAL's
answer out.

Everything the page shows comes from :class:`addressclip.predict.AddressPredictor` (ranking,
calibrated probabilities, the open-set decision), :mod:`ial_app.map_svg` (the map, from the
dataset's own street geometry) and :mod:`ial_app.llava` (the answer). The handlers never raise:
a refused upload (:mod:`ial_app.uploads`) or any failure becomes a message on the page.

Privacy and offline use: analytics are off (``GRADIO_ANALYTICS_ENABLED=False`` before Gradio is
imported, ``analytics_enabled=False``), no share link, server-side rendering off (it would start a
Node server), the theme uses system fonts (the default theme fetches Google Fonts), and the server
binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import hashlib
import html
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from ial_app.llava import DEFAULT_QUESTION  # noqa: E402
from ial_app.map_svg import StreetNetwork, render_map  # noqa: E402
from ial_app.uploads import MAX_PIXELS, MAX_UPLOAD_BYTES, UploadError, read_upload  # noqa: E402

log = logging.getLogger("ial_app")


@dataclass
class KnownPhoto:
    """A dataset photo offered as an example: its true address and position."""

    address: str
    utm: tuple[float, float]


@dataclass
class AppState:
    predictor: object
    network: StreetNetwork | None
    examples: list[str] = field(default_factory=list)
    known: dict[str, KnownPhoto] = field(default_factory=dict)   # sha256 of the file -> truth
    llava: object | None = None
    max_bytes: int = MAX_UPLOAD_BYTES
    max_pixels: int = MAX_PIXELS
    top_k: int = 5


def _sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def example_photos(ial, n: int = 8, split: str = "test") -> tuple[list[str], dict[str, KnownPhoto]]:
    """``n`` photos of ``split`` spread over its locations (one view each), with their truth."""
    rows = ial.split(split)
    loc = list(rows["location_id"])
    first = sorted({v: i for i, v in reversed(list(enumerate(loc)))}.values())
    picks = [first[int(j)] for j in (range(len(first)) if len(first) <= n else
                                     [round(k * (len(first) - 1) / (n - 1)) for k in range(n)])]
    paths, known = [], {}
    for i in picks:
        path = str(ial.image_path(rows[i]["image"], row=rows[i]["id"]))
        paths.append(path)
        known[_sha256(path)] = KnownPhoto(rows[i]["address"],
                                          (float(rows[i]["utm_easting"]), float(rows[i]["utm_northing"])))
    return paths, known


def _message(text: str, kind: str = "error") -> str:
    return f'<div id="ial-message" class="ial-{kind}">{html.escape(text)}</div>'


def result_html(pred, truth: KnownPhoto | None, threshold: float) -> str:
    rows = []
    for c in pred.candidates:
        hit = truth is not None and c.address == truth.address
        loc = f"{c.lat:.5f}, {c.lon:.5f}" if c.lat is not None else "-"
        rows.append(f'<tr class="candidate{" true" if hit else ""}" data-rank="{c.rank}" '
                    f'data-address="{html.escape(c.address, quote=True)}"><td>{c.rank}</td>'
                    f'<td>{html.escape(c.street)}</td><td>{html.escape(c.cross_street)}</td>'
                    f'<td>{html.escape(c.district)}</td><td>{loc}</td>'
                    f'<td>{100 * c.probability:.1f}%</td></tr>')
    top = pred.candidates[0]
    if pred.unknown and pred.open_set_score is not None:
        verdict = (f'<div id="ial-verdict" class="unknown">Not from this city, probably: the photo is '
                   f'unlike the training photos (open-set score {pred.open_set_score:.2f}, below the '
                   f'{pred.open_set_threshold:.2f} needed). Closest candidates:</div>')
    elif pred.unknown:
        verdict = (f'<div id="ial-verdict" class="unknown">Not from this city, probably: the best '
                   f'address has {100 * pred.top_probability:.1f}%, below the '
                   f'{100 * threshold:.1f}% needed. Closest candidates:</div>')
    else:
        verdict = (f'<div id="ial-verdict" class="known" data-address="{html.escape(top.address, quote=True)}">'
                   f'<b>{html.escape(top.address)}</b>, {html.escape(top.city)} '
                   f'({100 * top.probability:.1f}%)</div>')
    truth_line = ""
    if truth is not None:
        ranks = [c.rank for c in pred.candidates if c.address == truth.address]
        where = f"rank {ranks[0]}" if ranks else f"not in the top {len(pred.candidates)}"
        truth_line = f'<div id="ial-truth">True address: {html.escape(truth.address)} ({where})</div>'
    return (verdict + truth_line + '<table id="ial-candidates"><thead><tr><th>#</th><th>street</th>'
            '<th>cross street</th><th>district</th><th>lat, lon</th><th>probability</th></tr></thead>'
            '<tbody>' + "".join(rows) + "</tbody></table>")


def locate(state: AppState, path: str | None):
    """(preview, result HTML, map HTML, status HTML) for one uploaded file."""
    if not path:
        return None, "", "", ""
    t0 = time.perf_counter()
    try:
        image = read_upload(path, max_bytes=state.max_bytes, max_pixels=state.max_pixels)
    except UploadError as exc:
        return None, "", "", _message(str(exc))
    try:
        [pred] = state.predictor.predict([image], top_k=state.top_k)
        truth = state.known.get(_sha256(path))
        result = result_html(pred, truth, state.predictor.calibration.threshold)
        if state.network is None:
            svg = _message("this dataset has no street geometry to draw", "info")
        else:
            svg = render_map(state.network, [(c.address, c.probability) for c in pred.candidates],
                             true_utm=truth.utm if truth else None)
    except Exception as exc:  # noqa: BLE001 - the page reports it; the app keeps serving
        log.exception("prediction failed for %s", path)
        return image, "", "", _message(f"prediction failed: {type(exc).__name__}: {exc}")
    ms = 1000 * (time.perf_counter() - t0)
    return image, result, svg, _message(f"answered in {ms:.0f} ms", "info")


def ask_llava(state: AppState, path: str | None, question: str) -> str:
    if state.llava is None:
        return ("LLaVA-IAL is not connected: start the app with --llava EXPORTED_DIR or "
                "--llava-server URL.")
    if not path:
        return ""
    try:
        image = read_upload(path, max_bytes=state.max_bytes, max_pixels=state.max_pixels)
        from ial_app.llava import LocalLlava
        return state.llava.ask(image if isinstance(state.llava, LocalLlava) else path, question)
    except UploadError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001
        log.exception("LLaVA-IAL failed")
        return f"LLaVA-IAL failed: {type(exc).__name__}: {exc}"


CSS = """
#ial-verdict { font-size: 1.15em; margin: 4px 0 8px; }
#ial-verdict.unknown { color: #a33; }
.ial-error { color: #a33; font-weight: 600; }
.ial-info { color: #555; font-size: 0.9em; }
#ial-candidates { width: 100%; border-collapse: collapse; font-size: 0.92em; }
#ial-candidates td, #ial-candidates th { padding: 2px 6px; border-bottom: 1px solid #ddd; text-align: left; }
#ial-candidates tr.true { background: #e6f4e6; }
"""

THEME_FONTS = dict(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def build_app(state: AppState) -> gr.Blocks:
    with gr.Blocks(title="IAL: where was this photo taken?", analytics_enabled=False) as demo:
        gr.Markdown("## Where was this photo taken?\nUpload a street photo, or pick a test photo "
                    "below. AddressCLIP ranks the city's addresses; LLaVA-IAL answers in words.")
        with gr.Row():
            with gr.Column(scale=2):
                upload = gr.File(label="Photo", file_types=["image"], type="filepath",
                                 elem_id="ial-upload")
                preview = gr.Image(label="Your photo", interactive=False, height=220,
                                   elem_id="ial-preview")
                if state.examples:
                    gr.Examples(examples=[[p] for p in state.examples], inputs=[upload],
                                label="Test photos of the city", examples_per_page=len(state.examples))
                question = gr.Textbox(value=DEFAULT_QUESTION, label="Question for LLaVA-IAL",
                                      elem_id="ial-question")
                ask = gr.Button("Ask LLaVA-IAL", elem_id="ial-ask")
            with gr.Column(scale=3):
                status = gr.HTML(elem_id="ial-status")
                result = gr.HTML(elem_id="ial-result")
                city_map = gr.HTML(elem_id="ial-map")
                answer = gr.Textbox(label="LLaVA-IAL's answer", interactive=False,
                                    elem_id="ial-answer")
        upload.change(lambda p: locate(state, p), [upload], [preview, result, city_map, status]) \
            .then(lambda p, q: ask_llava(state, p, q), [upload, question], [answer])
        ask.click(lambda p, q: ask_llava(state, p, q), [upload, question], [answer])
    return demo


def launch(demo: gr.Blocks, state: AppState, *, host: str = "127.0.0.1", port: int = 7860,
           allowed_paths: list[str] | None = None, block: bool = True):
    demo.queue(default_concurrency_limit=1)
    return demo.launch(server_name=host, server_port=port, share=False, ssr_mode=False,
                       max_file_size=state.max_bytes, allowed_paths=allowed_paths or [],
                       theme=gr.themes.Default(**THEME_FONTS), css=CSS, quiet=True,
                       prevent_thread_lock=not block, footer_links=[], mcp_server=False,
                       enable_monitoring=False, pwa=False)
