"""The web app: upload checks, page content, and the real page in headless Chromium (Selenium).

The browser test needs Debian's ``chromium`` and ``chromium-driver`` (``make test`` installs them).
Without them it skips, except under CI (``CI=true``) or ``IAL_REQUIRE_BROWSER=1``, where it fails.
LLaVA-IAL's answer comes from a small OpenAI-compatible HTTP server started by the test, which
echoes the question it received: the app's wiring is tested, not a model.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from data_gen.questions import DESIGN_QUESTION
from ial_app.map_svg import StreetNetwork, render_map
from ial_app.uploads import UploadError, read_upload
from ial_core.launch import free_port

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1100")


# ---- uploads and page pieces (fast) -----------------------------------------------------------------

def test_uploads_are_refused_with_a_reason(tmp_path):
    good = tmp_path / "ok.png"
    Image.fromarray(np.zeros((20, 30, 4), dtype=np.uint8), "RGBA").save(good)
    img = read_upload(good)
    assert img.mode == "RGB" and img.size == (30, 20)
    (tmp_path / "notes.jpg").write_text("not a photo")
    with pytest.raises(UploadError, match="notes.jpg: not an image file"):
        read_upload(tmp_path / "notes.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(UploadError, match="empty"):
        read_upload(tmp_path / "empty.jpg")
    with pytest.raises(UploadError, match=r"the limit is 0 MB"):
        read_upload(good, max_bytes=10)
    bomb = tmp_path / "bomb.png"
    Image.new("1", (9000, 9000)).save(bomb)           # 81 megapixels in a few kB
    assert bomb.stat().st_size < 100_000
    with pytest.raises(UploadError, match="9000 x 9000 pixels.*decompression bomb"):
        read_upload(bomb)
    cut = tmp_path / "cut.jpg"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(cut, quality=90)
    cut.write_bytes(cut.read_bytes()[:300])
    with pytest.raises(UploadError, match="cut.jpg: the image is damaged"):
        read_upload(cut)


def test_map_highlights_the_predicted_sub_streets_in_rank_order():
    addresses = {"sub_streets": [
        {"address": "A & B, X", "geometry_wkt": "LINESTRING (0 0, 100 0)"},
        {"address": "C & D, X", "geometry_wkt": "MULTILINESTRING ((0 50, 100 50), (0 80, 50 80))"},
        {"address": "E & F, X", "geometry_wkt": "LINESTRING (0 0, 0 100)"}]}
    net = StreetNetwork.from_addresses(addresses)
    svg = render_map(net, [("C & D, X", 0.6), ("A & B, X", 0.3)], true_utm=(100.0, 0.0))
    assert svg.count('class="street"') == 3
    first = svg.index('data-rank="1" data-address="C &amp; D, X"')
    assert svg.index('data-rank="2" data-address="A &amp; B, X"') < first  # top-1 drawn last
    assert svg[first:].split(">")[0].count("M") == 2                     # both parts of the line
    # north is up: the y=80 part is drawn above (smaller pixel y than) the y=50 part
    assert 'class="true-location"' in svg
    assert StreetNetwork.from_addresses({"sub_streets": [{"address": "A"}]}) is None


def test_result_says_unknown_below_the_threshold():
    from addressclip.predict import Prediction, RankedAddress
    from ial_app.app import KnownPhoto, result_html
    c = [RankedAddress(i + 1, p, f"S{i} & T, D", f"S{i}", "T", "S & T", "D", "City", 60.0, 24.0)
         for i, p in enumerate([0.04, 0.03])]
    html_unknown = result_html(Prediction(c, unknown=True, top_probability=0.04), None, 0.1)
    assert "Not from this city" in html_unknown and "10.0%" in html_unknown
    # decided by the open-set score: the page names that score and its threshold, not the probability's
    by_score = result_html(Prediction(c, unknown=True, top_probability=0.04, open_set_score=-41.5,
                                      open_set_threshold=-30.25), None, 0.1)
    assert "Not from this city" in by_score and "unlike the training photos" in by_score
    assert "-41.50" in by_score and "-30.25" in by_score and "10.0%" not in by_score
    html_known = result_html(Prediction(c, unknown=False, top_probability=0.04),
                             KnownPhoto("S1 & T, D", (0.0, 0.0)), 0.01)
    assert 'data-address="S0 &amp; T, D"' in html_known and "(rank 2)" in html_known


# ---- the app in a real browser ------------------------------------------------------------------------

def _browser_or_skip():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    if missing:
        msg = f"{', '.join(missing)} missing: install Debian's chromium and chromium-driver"
        if os.environ.get("CI") == "true" or os.environ.get("IAL_REQUIRE_BROWSER") == "1":
            pytest.fail(msg + " (required under CI / IAL_REQUIRE_BROWSER=1)")
        pytest.skip(msg)


class _EchoLLaVA(BaseHTTPRequestHandler):
    """OpenAI-compatible /v1/chat/completions that answers with the question it got."""

    questions: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        parts = body["messages"][0]["content"]
        question = next(p["text"] for p in parts if p["type"] == "text")
        assert any(p["type"] == "image_url" and p["image_url"]["url"].startswith("data:image/jpeg;base64,")
                   for p in parts)
        self.questions.append(question)
        reply = json.dumps({"choices": [{"message": {"role": "assistant",
                                                     "content": f"echo: {question}"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def full_export(small_city, tmp_path_factory):
    """An (untrained) AddressCLIP-Tiny exported with --full on the small embedded city."""
    from addressclip.calibration import Calibration
    from addressclip.export_full import export_full
    from addressclip.model import create_clip
    from data_gen.dataset import load_dataset_dir
    torch.manual_seed(0)
    clip, cfg = create_clip("AddressCLIP-Tiny")
    cal_dir = tmp_path_factory.mktemp("cal")
    Calibration(temperature=0.5, threshold=0.0).save(cal_dir)
    out = tmp_path_factory.mktemp("export") / "full"
    export_full(clip, cfg["preprocess_cfg"], open_clip.get_tokenizer("AddressCLIP-Tiny"),
                load_dataset_dir(small_city).addresses, out, calibration_dir=cal_dir,
                provenance={"dataset": str(small_city)})
    return out


@pytest.mark.slow
def test_app_in_headless_chromium(full_export, small_city, tmp_path):
    _browser_or_skip()
    os.environ.setdefault("SE_OFFLINE", "true")      # Selenium Manager must not look online
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from data_gen.dataset import load_dataset_dir
    from ial_app.__main__ import build_state
    from ial_app.app import build_app, launch

    llava = ThreadingHTTPServer(("127.0.0.1", 0), _EchoLLaVA)
    threading.Thread(target=llava.serve_forever, daemon=True).start()
    state = build_state(str(full_export), n_examples=3,
                        llava_server=f"http://127.0.0.1:{llava.server_port}/v1")
    assert len(state.examples) == 3                         # from the export's provenance dataset
    demo = build_app(state)
    port = free_port()
    launch(demo, state, port=port, block=False,
           allowed_paths=sorted({str(Path(p).parent) for p in state.examples}))
    assert demo.analytics_enabled is False and not demo.share and demo.server_name == "127.0.0.1"

    ial = load_dataset_dir(small_city)
    test_rows = ial.split("test")
    photo = tmp_path / "street photo.jpg"                   # not an example: no true location
    shutil.copy(ial.image_path(test_rows[len(test_rows) - 1]["image"]), photo)
    [expected] = state.predictor.predict([photo], top_k=5)
    notes = tmp_path / "notes.jpg"
    notes.write_text("this is not a photo")
    bomb = tmp_path / "bomb.png"
    Image.new("1", (9000, 9000)).save(bomb)

    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in BROWSER_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        wait = WebDriverWait(driver, 90)

        def css(sel):
            return driver.find_elements(By.CSS_SELECTOR, sel)

        def text_of(sel):
            found = css(sel)
            return found[0].text if found else ""

        def upload(path):
            """Clear the file shown (if any), then choose ``path`` in the file input."""
            for button in css("#ial-upload button[aria-label='Clear']"):
                button.click()
            wait.until(lambda d: css("#ial-upload input[type=file]"))
            css("#ial-upload input[type=file]")[0].send_keys(str(path))

        driver.get(f"http://127.0.0.1:{port}/")
        wait.until(lambda d: css("#ial-upload input[type=file]"))
        t0 = time.perf_counter()
        upload(photo)
        wait.until(lambda d: text_of("#ial-verdict"))
        seconds = time.perf_counter() - t0
        top = expected.candidates[0]
        assert top.address in text_of("#ial-verdict")
        rows = css("#ial-candidates tr.candidate")
        assert [r.get_attribute("data-address") for r in rows] == [c.address for c in expected.candidates]
        assert len(css("#ial-map path.street")) == len(state.predictor.candidates)
        drawn = {e.get_attribute("data-rank"): e.get_attribute("data-address")
                 for e in css("#ial-map path.predicted")}
        assert drawn["1"] == top.address and len(drawn) == 5
        assert not css("#ial-map circle.true-location") and not css("#ial-truth")
        wait.until(lambda d: "echo:" in (css("#ial-answer textarea")[0].get_attribute("value") or ""))
        assert _EchoLLaVA.questions[-1] == DESIGN_QUESTION    # the question box starts with it

        box = css("#ial-question textarea")[0]
        box.clear()
        box.send_keys("Which district is this?")
        driver.find_element(By.CSS_SELECTOR, "#ial-ask").click()
        wait.until(lambda d: css("#ial-answer textarea")[0].get_attribute("value")
                   == "echo: Which district is this?")

        upload(notes)
        wait.until(lambda d: "not an image file" in text_of("#ial-message"))
        assert not css("#ial-verdict")
        upload(bomb)
        wait.until(lambda d: "decompression bomb" in text_of("#ial-message"))

        # an example photo of the test split: its true location is drawn, and the app still answers
        for button in css("#ial-upload button[aria-label='Clear']"):
            button.click()
        css(".gallery-item")[0].click()
        wait.until(lambda d: css("#ial-map circle.true-location") and text_of("#ial-truth"))
        assert "True address:" in text_of("#ial-truth")
        print(f"first photo answered on the page in {seconds:.2f} s")
    finally:
        driver.quit()
        demo.close()
        llava.shutdown()
