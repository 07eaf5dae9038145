"""The documentation site builds offline with ``mkdocs build --strict``.

Strict mode turns every warning into an error: a broken link between pages, a
``::: skgpx.something`` reference to an object that does not exist, or a
docstring griffe cannot parse fails this test.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# The site needs mkdocs, the material theme, mkdocstrings and its Python handler.
_DOCS_MODULES = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def _missing_docs_modules():
    missing = []
    for name in _DOCS_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # parent package missing
            found = False
        if not found:
            missing.append(name)
    return missing


def _mkdocs_command():
    exe = Path(sys.executable).with_name("mkdocs")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "mkdocs"]


def test_mkdocs_build_strict(tmp_path):
    missing = _missing_docs_modules()
    if missing:
        pytest.skip(
            f"documentation tools not installed ({', '.join(missing)}): pip install -e '.[docs]' "
            "(`make test` installs them)"
        )
    cmd = _mkdocs_command()
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    # No network: make any attempted fetch fail fast instead of hanging.
    env.update(http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9", no_proxy="")
    site = tmp_path / "site"
    proc = subprocess.run(
        [*cmd, "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    assert (site / "index.html").exists()
    # The API reference really rendered docstrings (mkdocstrings ran, objects resolved).
    api = (site / "api" / "kernels" / "index.html").read_text(encoding="utf-8")
    assert "RBF" in api and "length_scale" in api
    magma = (site / "api" / "magma" / "index.html").read_text(encoding="utf-8")
    assert "MultiTaskMagmaRegressor" in magma and "predict_mean_process" in magma
    shutil.rmtree(site, ignore_errors=True)


def test_every_page_is_in_the_nav():
    """A page missing from ``nav`` builds but cannot be reached from the site's menus."""
    import re

    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8").split("\nnav:", 1)[1]
    listed = set(re.findall(r":\s*(\S+\.md)\s*$", nav, flags=re.M))
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert pages - listed == set(), f"docs pages not in mkdocs.yml nav: {sorted(pages - listed)}"
    assert listed - pages == set(), f"nav entries without a page: {sorted(listed - pages)}"


def test_readme_links_and_figures_exist():
    """README is read on the repository page, outside mkdocs: its relative links must resolve."""
    import re

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in t]
    assert targets, "README links to no documentation page"
    missing = [t for t in targets if t and not (ROOT / t).exists()]
    assert missing == [], f"README links to missing files: {missing}"


def test_committed_figures_are_small_and_used():
    """docs/img holds the example figures shown by the docs: each under 200 KB and referenced."""
    pages = "".join(p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
    images = sorted((ROOT / "docs" / "img").glob("*.png"))
    assert images
    for image in images:
        assert image.stat().st_size < 200_000, f"{image.name} is {image.stat().st_size // 1000} KB (limit 200 KB)"
        assert f"img/{image.name}" in pages, f"{image.name} is not shown on any page"


# Pages whose ``python`` code blocks form one runnable script, executed in order in one
# namespace, so the documentation cannot drift from the API. (docs/examples.md shows
# excerpts of the example scripts, which tests/test_examples.py runs.)
CODE_PAGES = [
    "README.md",
    "docs/getting-started.md",
    "docs/guide/kernels.md",
    "docs/guide/batching-and-padding.md",
    "docs/guide/solvers.md",
    "docs/guide/precision-and-devices.md",
]


def _python_blocks(text):
    import re

    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


@pytest.mark.parametrize("page", CODE_PAGES)
def test_code_blocks_run(page, monkeypatch):
    import types
    import warnings

    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    blocks = _python_blocks((ROOT / page).read_text(encoding="utf-8"))
    assert blocks, f"{page} has no python code block"
    # A real module, so that classes defined in the docs (custom kernels) are dataclasses
    # whose module can be looked up.
    module = types.ModuleType("skgpx_docs_page")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter of tiny doc examples
        for i, block in enumerate(blocks):
            code = compile(block.replace("plt.show()", "plt.close('all')"), f"{page}[block {i}]", "exec")
            exec(code, namespace)
