"""``cxr-explorer demo``: the README's main job in one command.

Online: fetch the BioViL weights (hub, pinned revision) and the first N images of the Open-i collection, build a
bundle and start the explorer. Offline: ``--corpus`` takes a local corpus and ``--weights-dir`` the weights.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from cxr_explorer.errors import CliError
from cxr_explorer.network import hub_url, offline_message, reachable

log = logging.getLogger(__name__)


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cxr-explorer"


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser("demo", help="fetch weights + a demo corpus (or use local ones), build a bundle, open the app")
    p.add_argument("--corpus", help="a local corpus (CSV manifest or image folder); default: download Open-i")
    p.add_argument("--model", default="biovil", help="biovil, biovil-t or tiny-random (default: biovil)")
    p.add_argument("--weights-dir", help="a folder with the model repo's files (offline use)")
    p.add_argument("--out", help="bundle folder (default: bundles/<corpus>-<model>)")
    p.add_argument("--max-images", type=int, default=300, help="images to fetch from Open-i (default 300)")
    p.add_argument("--cache-dir", type=Path, default=None, help="where the downloaded corpus goes")
    p.add_argument("--openi-url", default=None, help="base URL of the Open-i collection archives")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="auto: bf16 where the hardware has native bf16, else fp32")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--no-app", action="store_true", help="build only; do not start the explorer")
    p.set_defaults(func=run)


def _corpus(args: argparse.Namespace) -> Path:
    if args.corpus:
        corpus = Path(args.corpus)
        if not corpus.exists():
            raise CliError(f"--corpus {corpus} does not exist")
        return corpus
    from cxr_explorer.index.openi import OPENI_BASE_URL, DownloadError, fetch_openi

    if args.max_images < 1:
        raise CliError("--max-images must be at least 1")
    base = args.openi_url or OPENI_BASE_URL
    if not reachable(base):
        raise CliError(offline_message("the Open-i demo corpus", base))
    cache = (args.cache_dir or _default_cache()) / "openi"
    try:
        return fetch_openi(cache, args.max_images, base)
    except DownloadError as exc:
        raise CliError(f"{exc}; offline, pass --corpus with a local corpus") from None


def _use_cache_when_offline(args: argparse.Namespace) -> str | None:
    """Without a network, make the hub client read its cache at once (no retries); returns the offline line."""
    if args.weights_dir or os.environ.get("HF_HUB_OFFLINE"):
        return None
    url = hub_url()
    if reachable(url):
        return None
    import huggingface_hub.constants

    os.environ["HF_HUB_OFFLINE"] = "1"  # for the weights resolver and any child process
    huggingface_hub.constants.HF_HUB_OFFLINE = True  # the client read the variable when it was imported
    return offline_message(f"the {args.model} weights", url)


def run(args: argparse.Namespace) -> int:
    """Weights first (fail fast offline), then corpus, build, app."""
    offline = _use_cache_when_offline(args) if args.model != "tiny-random" else None
    from cxr_explorer.cli import main as cli_main
    from cxr_explorer.retrieval.models import get_spec
    from cxr_explorer.retrieval.models.weights import WeightsNotFoundError, resolve_weights

    spec = get_spec(args.model)
    if spec.is_real:
        try:
            resolve_weights(spec, args.weights_dir)  # downloads or verifies now, before any corpus work
        except WeightsNotFoundError as exc:
            if offline is None:
                raise
            raise CliError(f"{offline}\n(and they are not in the Hugging Face cache: {exc})") from None
    corpus = _corpus(args)
    name = (corpus.stem if corpus.is_file() and corpus.stem != "openi_demo" else corpus.name if corpus.is_dir()
            else "openi")
    out = Path(args.out or Path("bundles") / f"{name}-{args.model}")
    build = ["build", str(corpus), "--out", str(out), "--model", args.model, "--device", args.device,
             "--precision", args.precision]
    if args.weights_dir:
        build += ["--weights-dir", args.weights_dir]
    code = cli_main(build)
    if code != 0:
        return code
    if args.no_app:
        print(f"bundle ready: {out}\nopen it with: cxr-explorer app {out}")
        return 0
    app = ["app", str(out), "--port", str(args.port)]
    if args.weights_dir:
        app += ["--weights-dir", args.weights_dir]
    return cli_main(app)
