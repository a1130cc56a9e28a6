"""``python -m ial_app --model PATH``: serve the app on 127.0.0.1:7860 (see :mod:`ial_app.app`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def build_state(model: str, *, data: str | None = None, n_examples: int = 8, llava: str | None = None,
                llava_server: str | None = None, llava_model: str = "llava-ial",
                max_upload_mb: float = 20.0, device: str = "cpu"):
    from addressclip.predict import FULL_EXPORT_FILE, AddressPredictor
    from data_gen.dataset import load_dataset_dir
    from ial_app.app import AppState, example_photos
    from ial_app.map_svg import StreetNetwork
    predictor = AddressPredictor.from_pretrained(model, data=data, device=device)
    if data is None:                # the dataset the model was trained on, when it is known
        if (Path(model) / "config.yaml").is_file():
            from addressclip.config import load_run_config
            data = str(load_run_config(model).dataset_root)
        elif (Path(model) / FULL_EXPORT_FILE).is_file():
            import json
            data = json.loads((Path(model) / FULL_EXPORT_FILE).read_text()).get("provenance", {}).get("dataset")
    examples, known = [], {}
    if data and Path(data).is_dir() and n_examples > 0:
        examples, known = example_photos(load_dataset_dir(data), n_examples)
    answerer = None
    if llava:
        from ial_app.llava import LocalLlava
        answerer = LocalLlava(llava)
    elif llava_server:
        from ial_app.llava import ServedLlava
        answerer = ServedLlava(llava_server, llava_model, api_key=os.environ.get("OPENAI_API_KEY"))
    return AppState(predictor=predictor, network=StreetNetwork.from_addresses(predictor.addresses),
                    examples=examples, known=known, llava=answerer,
                    max_bytes=int(max_upload_mb * 2**20))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ial_app", description="The IAL web app (Gradio).")
    p.add_argument("--model", required=True, help="stage-one run directory or `export --full` folder")
    p.add_argument("--data", help="dataset folder for example photos and true locations "
                                  "(default: the model's own)")
    p.add_argument("--examples", type=int, default=8, help="test photos offered as examples")
    p.add_argument("--llava", help="exported LLaVA-IAL folder (python -m llava_ial.export)")
    p.add_argument("--llava-server", help="OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1 "
                                          "(key from OPENAI_API_KEY)")
    p.add_argument("--llava-model", default="llava-ial", help="model name on the server")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this "
                                                      "machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--max-upload-mb", type=float, default=20.0)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    if a.llava and a.llava_server:
        p.error("give --llava or --llava-server, not both")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    state = build_state(a.model, data=a.data, n_examples=a.examples, llava=a.llava,
                        llava_server=a.llava_server, llava_model=a.llava_model,
                        max_upload_mb=a.max_upload_mb, device=a.device)
    from ial_app.app import build_app, launch
    demo = build_app(state)
    roots = sorted({str(Path(x).resolve().parent) for x in state.examples})
    print(f"IAL app on http://{a.host}:{a.port} (model {a.model}, "
          f"{len(state.predictor.candidates)} candidate addresses)", flush=True)
    launch(demo, state, host=a.host, port=a.port, allowed_paths=roots)
    return 0


if __name__ == "__main__":
    sys.exit(main())
