"""Reliability against corrupt and hostile inputs, one promise per test:

- corrupt rows and images give an error naming the file and row/id, or with ``skip`` (the
  builder's ``--skip-bad``) are skipped and counted; images in another mode or size are converted
  (RGB, resized by the preprocess), not refused (decision documented in
  :func:`ial_core.images.open_rgb`);
- an image that fails to decode inside a DataLoader worker (stage one and stage two) raises an
  error naming the image and its id;
- image paths with ``..``, absolute paths and symlinks out of the root are refused wherever paths
  are read (GPS CSV, dataset rows, LLaVA conversations, QA references; the released reader has its
  own tests in test_released.py);
- weights load without executing pickles or remote code: a checkpoint whose pickle would create a
  marker file is refused with a clear error and the marker never appears.
"""

from __future__ import annotations

import ast
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data_gen.photos import check_image, read_gps_csv
from helpers.synthetic import make_synthetic_dataset
from ial_core.errors import DataError, SkipReport
from ial_core.images import open_rgb

REPO = Path(__file__).resolve().parents[2]
PRE = {"size": (32, 32), "mode": "RGB", "mean": (0.48145466, 0.4578275, 0.40821073),
       "std": (0.26862954, 0.26130258, 0.27577711), "interpolation": "bicubic",
       "resize_mode": "shortest", "fill_color": 0}


# ---- image files of every kind -----------------------------------------------------------------

def _jpeg(path: Path, size=(40, 30), mode="RGB") -> Path:
    rng = np.random.default_rng(len(str(path)))
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).convert(mode) \
        .save(path, format="JPEG", quality=90)
    return path


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that claims ``width`` x ``height`` pixels (PIL refuses it before decoding a byte)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def _bad_images(folder: Path) -> dict[str, Path]:
    """Files no reader may accept, by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    good = _jpeg(folder / "good.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[:len(good) // 3])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_bytes(b"this is not an image\n" * 10)
    _png_header(folder / "bomb.png", 30_000, 30_000)      # 900 MPixel: a decompression bomb
    return {k: folder / f"{k}.{'png' if k == 'bomb' else 'jpg'}"
            for k in ("truncated", "empty", "text", "bomb")}


def _odd_images(folder: Path) -> dict[str, Path]:
    """Files in other modes and sizes that every reader converts to RGB."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {"cmyk": _jpeg(folder / "cmyk.jpg", mode="CMYK"),
           "grey": _jpeg(folder / "grey.jpg", mode="L"),
           "wide": _jpeg(folder / "wide.jpg", size=(300, 20)),
           "tiny": _jpeg(folder / "tiny.jpg", size=(9, 9))}
    ramp = (np.arange(24 * 16, dtype=np.uint32).reshape(16, 24) * 170).astype(np.uint16)
    Image.fromarray(ramp).save(folder / "grey16.png")                       # mode I;16
    Image.new("RGB", (24, 16), (204, 51, 0)).convert("P").save(folder / "palette.png")  # web-safe
    Image.new("LA", (24, 16), (90, 128)).save(folder / "grey_alpha.png")
    Image.new("RGBA", (24, 16), (10, 200, 10, 0)).save(folder / "rgba.png")
    out.update({k: folder / f"{k}.png" for k in ("grey16", "palette", "grey_alpha", "rgba")})
    return out


def test_bad_images_are_errors_naming_the_file(tmp_path):
    for kind, path in _bad_images(tmp_path).items():
        with pytest.raises(DataError) as info:
            open_rgb(path, source="gps.csv", row=7)
        message = str(info.value)
        assert str(path) in message and "gps.csv, row 7" in message, (kind, message)
    assert "DecompressionBomb" in str(pytest.raises(DataError, open_rgb, tmp_path / "bomb.png").value)


def test_images_in_other_modes_and_sizes_are_converted_not_refused(tmp_path):
    """Decision: CMYK, palette, grey, grey+alpha, RGBA and 16-bit grey become 8-bit RGB; any size
    is accepted here (the preprocess resizes). 16-bit grey is scaled, not clipped to white."""
    odd = _odd_images(tmp_path)
    for kind, path in odd.items():
        image = open_rgb(path)
        assert image.mode == "RGB", kind
    grey16 = np.asarray(open_rgb(odd["grey16"]))[..., 0]
    source = np.asarray(Image.open(odd["grey16"]), dtype=np.float64)
    assert np.abs(grey16 - source / 257).max() <= 0.5 + 1e-9          # 65535 -> 255, not clipped
    assert grey16.max() >= 250 and 100 < np.median(grey16) < 160     # a ramp, not a white sheet
    assert np.asarray(open_rgb(odd["palette"]))[0, 0].tolist() == [204, 51, 0]
    assert np.asarray(open_rgb(odd["grey_alpha"]))[0, 0].tolist() == [90, 90, 90]


def test_builder_image_check_names_the_csv_row_and_refuses_thumbnails(tmp_path):
    bad, odd = _bad_images(tmp_path / "bad"), _odd_images(tmp_path / "odd")
    for row, path in enumerate(bad.values(), start=2):
        with pytest.raises(DataError, match=rf"gps\.csv, row {row}: image .*{path.name}"):
            check_image(tmp_path, str(path.relative_to(tmp_path)), tmp_path / "gps.csv", row)
    for path in odd.values():
        check_image(tmp_path, str(path.relative_to(tmp_path)), tmp_path / "gps.csv", 2)
    _jpeg(tmp_path / "thumb.jpg", size=(6, 40))
    with pytest.raises(DataError, match=r"row 9: image 'thumb.jpg' is only 6x40 pixels"):
        check_image(tmp_path, "thumb.jpg", tmp_path / "gps.csv", 9)


# ---- the GPS table ------------------------------------------------------------------------------

GOOD_ROWS = ["a.jpg,60.17,24.94,90", "b.jpg,60.18,24.95,"]
BAD_ROWS = {
    "lat NaN": ("c.jpg,nan,24.94,0", r"lat nan is outside"),
    "lon inf": ("c.jpg,60.1,inf,0", r"lon inf is outside"),
    "lon -inf": ("c.jpg,60.1,-inf,0", r"lon -inf is outside"),
    "lat 91": ("c.jpg,91,24.94,0", r"lat 91.0 is outside \[-90.0, 90.0\]"),
    "lon -181": ("c.jpg,60,-181,0", r"lon -181.0 is outside"),
    "heading NaN": ("c.jpg,60,24,NaN", r"heading nan is outside"),
    "lat text": ("c.jpg,north,24,0", r"lat 'north' is not a number"),
    "missing field": ("c.jpg,60.1", r"missing or extra fields"),
    "extra field": ("c.jpg,60.1,24.9,0,surprise", r"missing or extra fields"),
    "empty image": (",60.1,24.9,0", r"missing or extra fields"),
    "duplicate": ("a.jpg,60.2,24.9,0", r"image 'a.jpg' is listed twice"),
    "dot-dot": ("../../etc/passwd,60.1,24.9,0", r"escapes the dataset root"),
    "absolute": ("/etc/passwd,60.1,24.9,0", r"is absolute"),
    "drive letter": ("C:\\photos\\x.jpg,60.1,24.9,0", r"is absolute"),
    "NUL byte": ("c\x00.jpg,60.1,24.9,0", r"NUL byte"),
    "huge field": ("c" * 200_000 + ".jpg,60.1,24.9,0", r"unreadable CSV row \(field larger"),
}


@pytest.mark.parametrize("kind", list(BAD_ROWS))
def test_bad_gps_row_is_named_or_skipped_and_counted(tmp_path, kind):
    row, message = BAD_ROWS[kind]
    path = tmp_path / "gps.csv"
    path.write_text("\n".join(["image,lat,lon,heading", *GOOD_ROWS, row]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"gps\.csv, row 4: .*{message}"):
        read_gps_csv(path)
    skip = SkipReport()
    table = read_gps_csv(path, skip=skip)
    assert table.image == ["a.jpg", "b.jpg"] and skip.counts == {"bad_gps_row": 1}
    assert "row 4" in skip.examples["bad_gps_row"][0]


def test_gps_table_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "gps.csv"
    path.write_bytes(b"image,lat,lon\ncaf\xe9.jpg,60.1,24.9\n")
    with pytest.raises(DataError, match=r"gps\.csv, row 2: not UTF-8"):
        read_gps_csv(path)
    with pytest.raises(DataError, match=r"gps\.csv, row 2: not UTF-8"):
        read_gps_csv(path, skip=SkipReport())       # a whole file cannot be skipped row by row


@pytest.mark.slow
def test_build_cli_skip_bad_keeps_converted_images_and_counts_the_rest(tmp_path, helsinki):
    """``--skip-bad`` end to end: odd-mode photos are kept (as RGB downstream), broken ones and bad
    rows are skipped and counted by reason in build_report.json."""
    from data_gen.build import main
    from data_gen.dataset import load_dataset_dir

    photos = tmp_path / "photos"
    odd, bad = _odd_images(photos / "odd"), _bad_images(photos / "bad")
    street = helsinki.street("Fabianinkatu").parts[0]
    names = [f"odd/{p.name}" for p in odd.values()] + [f"bad/{p.name}" for p in bad.values()]
    lines = ["image,lat,lon,heading"]
    for i, (name, d) in enumerate(zip(names, np.linspace(10, street.length - 10, len(names)))):
        p = street.interpolate(d)
        lon, lat = helsinki.projection.to_lonlat([p.x], [p.y])
        lines.append(f"{name},{lat[0]:.7f},{lon[0]:.7f},{i * 30}")
    lines += ["odd/cmyk.jpg,60.17,24.94,0", "odd/x.jpg,nan,24.94,0", "../x.jpg,60.17,24.94,0"]
    (tmp_path / "gps.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    argv = ["--images", str(photos), "--gps-csv", str(tmp_path / "gps.csv"), "--workers", "1",
            "--min-locations", "1", "--out", str(tmp_path / "data")]
    assert main(argv) == 2                              # without the flag: stops, names the row
    assert main(argv + ["--skip-bad"]) == 0
    report = json.loads((tmp_path / "data" / "build_report.json").read_text())
    assert report["by_reason"] == {"bad_gps_row": 3, "bad_image": len(bad)}
    ds = load_dataset_dir(tmp_path / "data")
    kept = sorted(r["image"] for s in ds.splits for r in ds.splits[s])
    assert kept == sorted(f"images/{n}" for n in names[:len(odd)])
    assert all(open_rgb(ds.image_path(k)).mode == "RGB" for k in kept)


# ---- stage one: DataLoader workers ---------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """24 images (1 district, 2 streets x 2 sub-streets x 6 locations, 1 heading), 32 px."""
    return make_synthetic_dataset(tmp_path_factory.mktemp("rel") / "data", n_districts=1,
                                  headings=1, image_size=32)


def _train_rows(root: Path) -> list[str]:
    from data_gen.dataset import load_dataset_dir
    return list(load_dataset_dir(root).split("train")["image"])


def _stage_one(root: Path, train=True):
    from addressclip.data import CandidateSet, IALImageDataset
    from data_gen.dataset import load_dataset_dir
    ial = load_dataset_dir(root)
    return IALImageDataset(ial, "train", CandidateSet.from_dataset(ial), preprocess_cfg=PRE,
                           train=train)


@pytest.fixture
def damaged_dataset(tiny_dataset, tmp_path):
    """A copy of the tiny dataset whose train images 0-6 are odd modes/sizes and 7 is truncated."""
    import shutil
    root = shutil.copytree(tiny_dataset, tmp_path / "data")
    rows = _train_rows(root)
    for rel, src in zip(rows, _odd_images(tmp_path / "odd").values()):
        Image.open(src).save(root / rel, format="PNG" if src.suffix == ".png" else "JPEG")
    data = (root / rows[7]).read_bytes()
    (root / rows[7]).write_bytes(data[:len(data) // 2])
    return root, rows


@pytest.mark.parametrize("train", [True, False])
def test_stage_one_worker_names_the_image_that_does_not_decode(damaged_dataset, train):
    from torch.utils.data import DataLoader
    root, rows = damaged_dataset
    ds = _stage_one(root, train=train)
    for i in range(7):                                      # converted, resized to the model size
        x = ds[(i, 3)] if train else ds[i]
        assert x["image"].shape == (3, 32, 32) and torch.isfinite(x["image"]).all()
    loader = DataLoader(ds, batch_size=4, num_workers=1,
                        sampler=[(i, 3) for i in range(12)] if train else range(12))
    with pytest.raises(DataError) as info:
        list(loader)
    message = str(info.value)
    assert "DataLoader worker" in message                     # it did come from the worker
    assert str(root / rows[7]) in message and f"item {rows[7]!r}" in message


def test_stage_one_refuses_rows_whose_image_leaves_the_dataset(tiny_dataset, tmp_path):
    import shutil

    import datasets

    from addressclip.data import CandidateSet, IALImageDataset
    from data_gen.dataset import load_dataset_dir
    root = shutil.copytree(tiny_dataset, tmp_path / "data")
    outside = _jpeg(tmp_path / "secret.jpg")
    (root / "images" / "link.jpg").symlink_to(outside)
    ial = load_dataset_dir(root)
    cands = CandidateSet.from_dataset(ial)
    for bad, message in (("../secret.jpg", "escapes"), (str(outside), "absolute"),
                         ("images/link.jpg", "resolves outside")):
        cols = ial.splits["train"].to_dict()
        cols["image"][2] = bad
        ial.splits["train"] = datasets.Dataset.from_dict(cols, features=ial.splits["train"].features)
        with pytest.raises(DataError, match=rf"item {cols['id'][2]!r}: image path .*{message}"):
            IALImageDataset(ial, "train", cands, preprocess_cfg=PRE, train=True)


# ---- stage two: conversations, dataset, collator -------------------------------------------------

@pytest.fixture(scope="module")
def llava_stack(tmp_path_factory):
    from llava_ial.testing import cached_tiny_stack
    return cached_tiny_stack(tmp_path_factory.getbasetemp(), make_synthetic_dataset)


def _conversations(stack, tmp_path: Path, images: list[str]) -> Path:
    """Instruction samples of the tiny stack re-pointed at ``images`` (relative to tmp_path)."""
    samples = json.loads((stack[1].conversations / "instruct_train.json").read_text())[:len(images)]
    for s, image in zip(samples, images):
        s["image"] = image
    path = tmp_path / "conv.json"
    path.write_text(json.dumps(samples), encoding="utf-8")
    return path


def _stage_two(stack, conversations: Path, image_root: Path):
    from transformers import AutoProcessor

    from llava_ial.data import ConversationDataset
    processor = AutoProcessor.from_pretrained(stack[1].model)
    config = json.loads((stack[1].model / "config.json").read_text())
    ds = ConversationDataset(conversations, processor, image_root=image_root,
                             image_token_id=config["image_token_index"],
                             n_image_tokens=config["image_seq_length"])
    return ds, processor


def test_stage_two_worker_names_the_sample_and_image(llava_stack, tmp_path):
    from torch.utils.data import DataLoader

    from llava_ial.data import Collator, SampleError
    odd = _odd_images(tmp_path / "odd")
    bad = _bad_images(tmp_path / "bad")
    images = [f"odd/{p.name}" for p in odd.values()] + ["bad/truncated.jpg"]
    conv = _conversations(llava_stack, tmp_path, images)
    ds, processor = _stage_two(llava_stack, conv, tmp_path)
    collate = Collator(processor.tokenizer.pad_token_id)
    good = DataLoader(torch.utils.data.Subset(ds, range(len(odd))), batch_size=4, num_workers=1,
                      collate_fn=collate)
    sizes = {tuple(b["pixel_values"].shape[1:]) for b in good}
    assert len(sizes) == 1                                     # every odd image, one pixel size
    loader = DataLoader(ds, batch_size=4, num_workers=1, collate_fn=collate)
    with pytest.raises(SampleError) as info:
        list(loader)
    message = str(info.value)
    assert "DataLoader worker" in message and str(bad["truncated"]) in message
    assert repr(ds.ids[-1]) in message and "conv.json" in message


@pytest.mark.parametrize("image, message", [("../outside.jpg", "escapes"),
                                            ("/etc/passwd", "absolute"), ("", "empty image path")])
def test_conversation_image_outside_the_root_is_refused_up_front(llava_stack, tmp_path, image,
                                                                 message):
    from llava_ial.data import SampleError, read_conversations
    conv = _conversations(llava_stack, tmp_path, ["images/00000_h0.jpg", image])
    sample_id = json.loads(conv.read_text())[1]["id"]
    with pytest.raises(SampleError, match=rf"conv\.json: item 1 \(sample {sample_id!r}\).*{message}"):
        read_conversations(conv)


def test_conversation_symlink_out_of_the_root_is_refused(llava_stack, tmp_path):
    from llava_ial.data import SampleError
    root = tmp_path / "root"
    root.mkdir()
    _jpeg(root / "ok.jpg")
    (root / "link.jpg").symlink_to(_jpeg(tmp_path / "outside.jpg"))
    ds, _ = _stage_two(llava_stack, _conversations(llava_stack, tmp_path, ["ok.jpg", "link.jpg"]),
                       root)
    assert ds[0]["pixel_values"].ndim == 3
    with pytest.raises(SampleError, match=rf"item {ds.ids[1]!r}: .*resolves outside"):
        ds[1]


def test_conversation_file_not_utf8_or_not_json_is_named(tmp_path):
    from llava_ial.data import SampleError, read_conversations
    (tmp_path / "latin.json").write_bytes(b'[{"id": "caf\xe9"}]')
    with pytest.raises(SampleError, match=r"latin\.json: not UTF-8"):
        read_conversations(tmp_path / "latin.json")
    (tmp_path / "cut.json").write_text('[{"id": "a",\n "image": ', encoding="utf-8")
    with pytest.raises(SampleError, match=r"cut\.json: line 2: not valid JSON"):
        read_conversations(tmp_path / "cut.json")


# ---- QA references -------------------------------------------------------------------------------

REF = {"id": "r1", "street": "Grant Street", "district": "Downtown", "city": "Pittsburgh"}


@pytest.mark.parametrize("change, message", [
    ({"image": "../../etc/passwd"}, "escapes"),
    ({"image": "/etc/passwd"}, "is absolute"),
    ({"image": 5}, '"image" must be a path'),
    ({"lat": float("nan"), "lon": 1.0}, "lat nan is not a number"),
    ({"lat": 40.0, "lon": float("inf")}, "lon inf is not a number"),
    ({"lat": 91.0, "lon": 1.0}, r"lat 91.0 is not a number in \[-90.0, 90.0\]"),
    ({"lat": True, "lon": 1.0}, "lat True"),
    ({"lat": "40.4", "lon": 1.0}, "lat '40.4'"),
    ({"street": ""}, 'missing "street"'),
    ({"id": None}, 'missing "id"'),
    ({"id": "r0"}, "duplicate id 'r0'"),
])
def test_bad_reference_line_is_named(tmp_path, change, message):
    from eval.references import from_jsonl
    first = {**REF, "id": "r0"}
    path = tmp_path / "refs.jsonl"
    path.write_text(json.dumps(first) + "\n" + json.dumps({**REF, **change}) + "\n",
                    encoding="utf-8")
    with pytest.raises(DataError, match=rf"refs\.jsonl, row 2: .*{message}"):
        from_jsonl(path)


def test_references_file_not_utf8_and_symlinked_image(tmp_path):
    from eval.references import from_jsonl
    path = tmp_path / "refs.jsonl"
    path.write_bytes(json.dumps(REF).encode() + b'\n{"id": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"refs\.jsonl, row 2: not UTF-8"):
        from_jsonl(path)
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.jpg").symlink_to(_jpeg(tmp_path.parent / f"{tmp_path.name}-out.jpg"))
    _jpeg(tmp_path / "img" / "b.jpg")
    path.write_text(json.dumps({**REF, "image": "img/b.jpg"}) + "\n", encoding="utf-8")
    assert from_jsonl(path).items[0].image == (tmp_path / "img" / "b.jpg").resolve()
    path.write_text(json.dumps({**REF, "image": "img/a.jpg"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="resolves outside"):
        from_jsonl(path)


# ---- pickled payloads and remote code ------------------------------------------------------------

class _Payload:
    """Unpickling this runs ``exec``, which creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


@pytest.fixture
def evil(tmp_path):
    """(write(path), marker): ``write`` saves a torch checkpoint carrying the payload. The payload is
    checked to be live (a plain ``torch.load`` does create the marker) so no test passes vacuously."""
    marker = tmp_path / "PWNED"

    def write(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"visual.proj": torch.zeros(2), "payload": _Payload(marker)}, path)
        return path

    probe = write(tmp_path / "probe.pt")
    torch.load(probe, weights_only=False)          # deliberately unsafe: proves the payload fires
    assert marker.exists()
    marker.unlink()
    return write, marker


def test_stage_one_checkpoints_refuse_pickles(evil, tmp_path):
    from addressclip.checkpoint import MODEL_FILE, STATE_FILE, load_training_state
    from addressclip.model import CheckpointError, create_clip, load_clip_dir, load_state_dict_file
    write, marker = evil
    pt, bin_ = write(tmp_path / "weights.pt"), write(tmp_path / "weights.bin")
    for path in (pt, bin_):
        with pytest.raises(CheckpointError, match=rf"{path.name}: refused to load.*weights_only"):
            load_state_dict_file(path)
    # --pretrained path.pt (open_clip local checkpoint)
    with pytest.raises(CheckpointError, match="refused to load"):
        create_clip("AddressCLIP-Tiny", pretrained=str(pt))
    # a run's checkpoint directory: the pickle under the safetensors name, and a training state
    ckpt = tmp_path / "run" / "checkpoints" / "step_000001"
    write(ckpt / MODEL_FILE)
    _, config = create_clip("AddressCLIP-Tiny")
    (ckpt / "open_clip_config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(CheckpointError, match=rf"{MODEL_FILE}: not a readable safetensors file"):
        load_clip_dir(ckpt)
    write(ckpt / STATE_FILE)
    with pytest.raises(Exception, match="Weights only load failed"):
        load_training_state(ckpt)
    assert not marker.exists()


@pytest.fixture(scope="module")
def bin_only_llava(tmp_path_factory):
    """A tiny LLaVA folder whose only weights file is a pickle with the payload."""
    from helpers.qa import build_tiny_llava
    root = tmp_path_factory.mktemp("binonly")
    folder = build_tiny_llava(root / "llava")
    (folder / "model.safetensors").unlink()
    marker = root / "PWNED"
    torch.save({"payload": _Payload(marker)}, folder / "pytorch_model.bin")
    (folder / "llava_ial.json").write_text(json.dumps({"kind": "full"}), encoding="utf-8")
    return folder, marker


def test_hf_folder_with_only_a_pickle_is_refused(bin_only_llava, tmp_path):
    from eval.backends.base import BackendError, Item
    from eval.backends.hf import HFBackend, HFOptions
    from llava_ial.inference import load_for_inference
    from llava_ial.model import load_llava
    folder, marker = bin_only_llava
    backend = HFBackend(folder, max_new_tokens=4, options=HFOptions(device="cpu"))
    with pytest.raises(BackendError, match="no file named model.safetensors"):
        list(backend.generate([Item("a", _jpeg(tmp_path / "a.jpg"), "q")]))
    with pytest.raises(OSError, match="model.safetensors"):
        load_for_inference(folder)
    with pytest.raises(OSError, match="model.safetensors"):
        load_llava(folder)
    assert not marker.exists()


def test_lora_adapter_must_be_safetensors(tmp_path, evil):
    from helpers.qa import build_tiny_llava
    from llava_ial.inference import load_for_inference
    base = build_tiny_llava(tmp_path / "base")
    write, marker = evil
    adapter = tmp_path / "adapter"
    write(adapter / "adapter_model.bin")
    (adapter / "adapter_config.json").write_text("{}", encoding="utf-8")
    (adapter / "llava_ial.json").write_text(json.dumps({"kind": "lora", "base_model": str(base)}))
    with pytest.raises(FileNotFoundError, match="no adapter_model.safetensors"):
        load_for_inference(adapter)
    assert not marker.exists()


def _calls(attr: str):
    """(file, line, call node) of every ``*.attr(...)`` call in the toolkit's packages."""
    for package in ("addressclip", "llava_ial", "eval", "data_gen", "ial_pipeline"):
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                        and node.func.attr == attr:
                    yield path.relative_to(REPO), node.lineno, node


def _keyword(node: ast.Call, name: str):
    return next((k.value for k in node.keywords if k.arg == name), None)


OWN_LOADERS = {"AddressPredictor"}


def test_every_loader_call_is_safetensors_only_and_runs_no_remote_code():
    """Static check over the source: weights come from safetensors (or GGUF), Auto* classes get an
    explicit trust_remote_code (False, or the user's opt-in flag), torch.load is weights_only."""
    problems, seen = [], 0
    for path, line, node in _calls("from_pretrained"):
        seen += 1
        receiver = ast.unparse(node.func.value)
        if receiver in OWN_LOADERS:     # the toolkit's own; the library calls inside are checked here
            continue
        if receiver.startswith("Auto") or receiver in ("PeftModel",):
            remote = _keyword(node, "trust_remote_code")
            if receiver != "PeftModel" and not (
                    (isinstance(remote, ast.Constant) and remote.value is False)
                    or (remote is not None and "trust_remote_code" in ast.unparse(remote))):
                problems.append(f"{path}:{line} {receiver}.from_pretrained without "
                                "trust_remote_code=False")
        loads_weights = not any(k in receiver for k in ("Tokenizer", "Processor", "Config"))
        if loads_weights and receiver != "PeftModel":
            safe = _keyword(node, "use_safetensors")
            if _keyword(node, "gguf_file") is None and not (
                    isinstance(safe, ast.Constant) and safe.value is True):
                problems.append(f"{path}:{line} {receiver}.from_pretrained without "
                                "use_safetensors=True")
    for path, line, node in [*_calls("load"), *_calls("loads")]:
        receiver = ast.unparse(node.func.value)
        flag = _keyword(node, "weights_only")
        if receiver == "torch" and not (isinstance(flag, ast.Constant) and flag.value is True):
            problems.append(f"{path}:{line} torch.load without weights_only=True")
        if receiver in ("pickle", "dill", "joblib"):
            problems.append(f"{path}:{line} {receiver}.{node.func.attr} runs pickled code")
    for attr in ("load_checkpoint", "create_model"):
        for path, line, node in _calls(attr):
            if ast.unparse(node.func.value) == "open_clip":
                flag = _keyword(node, "weights_only")
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    problems.append(f"{path}:{line} open_clip.{attr} without weights_only=True")
    assert seen >= 15
    assert not problems, "\n".join(problems)
