"""Predictor speed on CPU: images/s batched, latency of one image, and the web app's response time.

- batched: ``AddressPredictor.predict(paths, batch_size=B)`` over the test split (JPEG decoding,
  preprocessing, the image tower, ranking against the cached candidate embeddings);
- one image: ``predict([path])`` repeated, median and 90th percentile;
- app: the page's handler for one upload (:func:`ial_app.app.locate`: upload checks, prediction,
  result table and SVG map), median over photos, without the browser's own time;
- page (``--browser N``): the app served on 127.0.0.1 and driven by headless Chromium, from choosing
  the file to the address shown on the page (upload, queue, handler, rendering), median over N.

    python benchmarks/bench_predict.py [--model runs/helsinki/addressclip] [--images 860] [--batch 64]
                                       [--browser 20] [--compare-open-set true --rounds 2]

``--compare-open-set true`` times the batched and one-image runs again without the open-set score
(``calibration.json``'s, e.g. the Mahalanobis distance), to show what abstaining costs.

Candidate text embeddings are computed once before timing (the predictor caches them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from common import median_p90

from ial_core.config import option, parse_config


@dataclass
class PredictBenchConfig:
    model: str = option("runs/helsinki/addressclip", "trained AddressCLIP run")
    images: int = option(860, "test images for the batched timing")
    batch: int = option(64, "prediction batch")
    single: int = option(50, "repetitions for one-image latency")
    browser: int = option(0, "photos uploaded through the page")
    compare_open_set: bool = option(False, "also time prediction without the stored open-set score "
                                    "(top-probability rule)")
    rounds: int = option(1, "repetitions of the batched and one-image timings")


def main(argv: list[str] | None = None) -> None:
    a = parse_config(PredictBenchConfig, argv, description=__doc__.split("\n")[0])
    torch.set_grad_enabled(False)
    from addressclip.predict import AddressPredictor
    from ial_app.__main__ import build_state
    from ial_app.app import locate

    state = build_state(a.model, n_examples=0)
    pred: AddressPredictor = state.predictor
    from addressclip.config import load_run_config
    from data_gen.dataset import load_dataset_dir
    data = load_run_config(a.model).dataset_root if (Path(a.model) / "config.yaml").is_file() else None
    ial = load_dataset_dir(data)
    rows = ial.split("test")
    paths = [ial.image_path(x) for x in rows["image"]][:a.images]
    _ = pred.text_features
    pred.predict(paths[:a.batch], batch_size=a.batch)          # warm-up

    print(f"threads {torch.get_num_threads()}, {len(pred.candidates)} candidates, open-set score "
          f"{pred.calibration.open_set_score}")
    stored = pred.open_set
    # with the stored open-set score, then (--compare-open-set) without it, interleaved per round
    modes = [("", stored)] + ([(" (top-probability rule)", None)] if a.compare_open_set and stored else [])
    for label, score in modes * a.rounds:
        pred.open_set = score
        t0 = time.perf_counter()
        pred.predict(paths, batch_size=a.batch)
        dt = time.perf_counter() - t0
        print(f"batched (batch {a.batch}){label}: {len(paths)} images in {dt:.2f} s = "
              f"{len(paths) / dt:.0f} images/s")
        single = []
        for path in paths[:a.single]:
            t = time.perf_counter()
            pred.predict([path])
            single.append(1000 * (time.perf_counter() - t))
        median, p90 = median_p90(single)
        print(f"one image{label}: median {median:.1f} ms, p90 {p90:.1f} ms over {len(single)}")
    pred.open_set = stored
    if stored is not None:   # the score alone, on embeddings: what abstaining adds to a prediction
        emb = pred.embed(paths, batch_size=a.batch)
        for rows in (emb, emb[:1]):
            reps = max(1, 2000 // len(rows))
            t = time.perf_counter()
            for _ in range(reps):
                pred.open_set_scores(rows)
            dt = (time.perf_counter() - t) / reps
            print(f"open-set score alone ({pred.calibration.open_set_score}), {len(rows)} embeddings: "
                  f"{1000 * dt:.3f} ms ({1e6 * dt / len(rows):.1f} us per image)")

    app = []
    for path in paths[:a.single]:
        t = time.perf_counter()
        _, result, svg, _ = locate(state, str(path))
        app.append(1000 * (time.perf_counter() - t))
        assert result and svg
    median, p90 = median_p90(app)
    print(f"app handler (upload checks + prediction + table + map): median {median:.1f} ms, "
          f"p90 {p90:.1f} ms")

    if a.browser:
        page = browser_round_trips(state, paths[:a.browser])
        median, p90 = median_p90(page)
        print(f"page (headless Chromium, upload -> address shown): median {median:.0f} ms, "
              f"p90 {p90:.0f} ms over {len(page)}")


def browser_round_trips(state, paths) -> list[float]:
    import os
    import tempfile
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from ial_app.app import build_app, launch
    from ial_core.launch import free_port
    port = free_port()
    demo = build_app(state)
    launch(demo, state, port=port, block=False)
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        opts.add_argument(flag)
    opts.add_argument("--user-data-dir=" + tempfile.mkdtemp())
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)

    def css(selector: str) -> list:
        return driver.find_elements(By.CSS_SELECTOR, selector)
    times = []
    try:
        wait = WebDriverWait(driver, 120)
        driver.get(f"http://127.0.0.1:{port}/")
        for path in paths:
            for button in css("#ial-upload button[aria-label='Clear']"):
                button.click()
            wait.until(lambda d: css("#ial-upload input[type=file]") and not css("#ial-verdict"))
            t = time.perf_counter()
            css("#ial-upload input[type=file]")[0].send_keys(str(path))
            wait.until(lambda d: css("#ial-verdict"))
            times.append(1000 * (time.perf_counter() - t))
    finally:
        driver.quit()
        demo.close()
    return sorted(times)


if __name__ == "__main__":
    main()
