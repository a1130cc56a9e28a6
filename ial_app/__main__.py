"""``python -m ial_app --model PATH``: serve the app on 127.0.0.1:7860 (see :mod:`ial_app.app`)."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ial_core.config import option, parse_config, usage_error


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


@dataclass
class AppConfig:
    model: str = option(help="stage-one run directory or `export --full` folder")
    data: str | None = option(None, "dataset folder for example photos and true locations "
                                    "(none: the model's own)")
    examples: int = option(8, "test photos offered as examples")
    llava: str | None = option(None, "exported LLaVA-IAL folder (python -m llava_ial.export)")
    llava_server: str | None = option(None, "OpenAI-compatible API root, e.g. "
                                            "http://127.0.0.1:8000/v1 (key from OPENAI_API_KEY)")
    llava_model: str = option("llava-ial", "model name on the server")
    host: str = option("127.0.0.1", "address to bind (127.0.0.1: this machine only)")
    port: int = option(7860, "port to serve on")
    max_upload_mb: float = option(20.0, "largest accepted upload in MB")
    device: str = option("cpu", "device of the models (cpu, cuda)")


def main(argv: list[str] | None = None) -> int:
    a = parse_config(AppConfig, argv, prog="python -m ial_app",
                     description="The IAL web app (Gradio).")
    if a.llava and a.llava_server:
        usage_error("python -m ial_app", "give --llava or --llava_server, not both")
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
