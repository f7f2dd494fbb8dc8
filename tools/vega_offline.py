"""Build the offline HTML template for `dvc plots show`: vega, vega-lite and vega-embed inlined.

DVC's default page loads the three libraries from a CDN, so on a machine without internet (or behind a
proxy that blocks jsdelivr) every plot is blank. This template carries the minified builds from the npm
registry inside the page; `.dvc/config` points `plots.html_template` at it.

    python -m tools.vega_offline            # rebuild vega_offline/dvc_plots.html + PROVENANCE.json (needs npm)

Only the npm registry is contacted, through npm itself (`npm pack`); the tarballs' integrity hashes and the
sha256 of every inlined file are written to PROVENANCE.json beside the template.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGES = {  # npm spec -> minified browser build inside the tarball; vega-embed expects the other two as globals
    "vega@5": "package/build/vega.min.js",
    "vega-lite@5": "package/build/vega-lite.min.js",
    "vega-embed@6": "package/build/vega-embed.min.js",
}
DEFAULT_OUT = Path("vega_offline/dvc_plots.html")
PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")  # what dvc-render substitutes in the template
MAX_BYTES = 2_000_000

PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot (offline)</title>
    <!-- {versions}: inlined from the npm registry (BSD-3-Clause), see PROVENANCE.json.
         This page loads nothing from the network. Rebuild: python -m tools.vega_offline -->
{scripts}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def page(builds: dict[str, str]) -> str:
    """Pure: the template with each build (name@version -> minified JS) in its own inline script, in order."""
    for name, code in builds.items():
        found = [p for p in PLACEHOLDERS if p in code] + (["</script"] if "</script" in code.lower() else [])
        if found:
            raise ValueError(f"{name} contains {found}: it cannot be inlined in a dvc-render template")
    scripts = "\n".join(f'    <script type="text/javascript">\n{code}\n    </script>' for code in builds.values())
    return PAGE.format(versions=", ".join(builds), scripts=scripts)


def npm_pack(workdir: Path) -> list[dict]:
    """`npm pack` the packages into `workdir` (npm's own registry client); npm's JSON report per tarball."""
    done = subprocess.run(
        ["npm", "pack", "--json", *PACKAGES], cwd=workdir, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"npm pack failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def build(out: Path) -> dict[str, object]:
    """Download, inline, write the template and PROVENANCE.json; returns the provenance."""
    with tempfile.TemporaryDirectory(prefix="vega-offline-") as tmp:
        packed = npm_pack(Path(tmp))
        builds, provenance = {}, []
        for spec, report in zip(PACKAGES, packed, strict=True):
            with tarfile.open(Path(tmp) / report["filename"]) as tar:
                member = tar.extractfile(PACKAGES[spec])
                if member is None:
                    raise RuntimeError(f"{report['filename']} has no {PACKAGES[spec]}")
                code = member.read().decode("utf-8")
            builds[f"{report['name']}@{report['version']}"] = code
            provenance.append(
                {
                    "package": report["name"],
                    "version": report["version"],
                    "tarball_integrity": report["integrity"],
                    "file": PACKAGES[spec],
                    "sha256": hashlib.sha256(code.encode()).hexdigest(),
                    "bytes": len(code.encode()),
                }
            )
    html = page(builds)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    document = {"template": out.name, "bytes": len(html.encode()), "inlined": provenance}
    (out.parent / "PROVENANCE.json").write_text(json.dumps(document, indent=2) + "\n")
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.vega_offline", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    document = build(args.out)
    size = int(str(document["bytes"]))
    inlined = [f"{p['package']}@{p['version']}" for p in document["inlined"]]  # type: ignore[attr-defined]
    print(f"wrote {args.out} ({size / 1e6:.2f} MB): {', '.join(inlined)}")
    if size > MAX_BYTES:
        print(f"warning: larger than {MAX_BYTES / 1e6:.0f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
