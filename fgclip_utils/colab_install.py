"""Install the study into a running Colab kernel without breaking it (run as a script, before the package is
importable: it imports nothing of it).

Colab's kernel has already imported torch, numpy, IPython and its widget stack; replacing any of them underneath
it (a newer torch, ipykernel 7, ipywidgets 8, which Colab's frontend does not support) breaks the runtime. So
every such package that is installed is pinned to its installed version in a pip constraints file, and the study
is installed with its core dependencies only (Jupyter, papermill and the test tools are extras it does not need
there): pip adds what is missing (open_clip_torch, umap-learn, ...) and, if something would need a pinned
package changed, stops with an error instead of changing it. Running it again is harmless: what is installed is
left as it is. Hugging Face ``transformers`` (notebook 01's detectors) is added only if the runtime has none: the
one Colab ships is kept, with the libraries it was built against. The constraints file is removed afterwards.

    python fgclip_utils/colab_install.py [REPO_DIR]
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

# what a running kernel has imported or depends on: never upgraded or downgraded in place
KEEP = ("torch", "torchvision", "torchaudio", "numpy", "scipy", "pandas", "scikit-learn", "matplotlib", "pillow",
        "ipython", "ipykernel", "ipywidgets", "widgetsnbextension", "jupyterlab-widgets", "jupyter-client",
        "jupyter-core", "tornado", "traitlets", "pyzmq", "tqdm", "transformers", "tokenizers", "huggingface-hub",
        "safetensors")
DETECTOR_REQUIREMENT = "transformers>=4.40"  # as the package's `detectors` extra asks


def installed_versions(names=KEEP) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def constraints(versions: dict[str, str]) -> str:
    """A pip constraints file pinning each installed package to its version."""
    return "".join(f"{name}=={version}\n" for name, version in sorted(versions.items()))


def install_command(repo: Path, constraints_file: Path) -> list[str]:
    return [sys.executable, "-m", "pip", "install", "--quiet", "--constraint", str(constraints_file),
            "--editable", str(repo)]


def detector_command(constraints_file: Path) -> list[str] | None:
    """The pip command adding ``transformers`` under the constraints, or None when the runtime has it already."""
    try:
        metadata.version("transformers")
        return None
    except metadata.PackageNotFoundError:
        return [sys.executable, "-m", "pip", "install", "--quiet", "--constraint", str(constraints_file),
                DETECTOR_REQUIREMENT]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    repo = Path(argv[0] if argv else Path(__file__).resolve().parents[1])
    pins = installed_versions()
    with tempfile.TemporaryDirectory(prefix="fgclip-install-") as tmp:
        pins_file = Path(tmp) / "constraints.txt"
        pins_file.write_text(constraints(pins))
        result = subprocess.run(install_command(repo, pins_file))
        extra = detector_command(pins_file) if result.returncode == 0 else None
        if extra is not None:
            result = subprocess.run(extra)
    if result.returncode != 0:
        print(f"\nThe install stopped rather than replace a package the running kernel uses (pinned: "
              f"{', '.join(f'{k} {v}' for k, v in sorted(pins.items()))}). Re-run this cell; if it fails again, "
              f"use a fresh runtime (Runtime -> Disconnect and delete runtime).", file=sys.stderr)
        return result.returncode
    print(f"fgclip installed from {repo}; kept as they were: {', '.join(sorted(pins))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
