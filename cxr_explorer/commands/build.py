"""``cxr-explorer build``: index a corpus (CSV manifest, folder of images or a known layout) into a bundle."""

from __future__ import annotations

import argparse
import errno
import logging
import shlex
import sys
from pathlib import Path

from cxr_explorer.errors import CliError

INDEX_TYPES = ("auto", "flat", "hnsw", "ivf")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    from cxr_explorer.index.presets import PRESETS
    from cxr_explorer.retrieval.models.registry import list_models

    p = sub.add_parser("build", help="index a corpus into a bundle (resumable; rerun the same command to resume)",
                       description="Index a corpus into a bundle. Bad images and reports are skipped and listed in "
                       "the bundle's skipped.csv; the exit code is 0. Rerun the same command after a crash to finish.")
    p.add_argument("corpus", metavar="CORPUS", help="CSV manifest, folder of images (recursive), or a preset layout")
    p.add_argument("--out", required=True, metavar="DIR", help="bundle folder to write (created if missing)")
    p.add_argument("--model", default="biovil", choices=list_models(), help="model to embed with (default biovil)")
    p.add_argument("--weights-dir", type=Path, default=None, help="folder with the released model files")
    p.add_argument("--image-col", default=None, metavar="COL", help="column of image paths (default: auto-detect)")
    p.add_argument("--text-col", nargs="+", default=None, metavar="COL",
                   help="report column(s), joined in order (default: report, text or findings + impression)")
    p.add_argument("--id-col", default=None, metavar="COL", help="column of unique item ids (default: from the path)")
    p.add_argument("--hash-ids", action="store_true",
                   help="ids are a SHA-256 of the path instead of the path (file names may carry identifiers)")
    p.add_argument("--keep-col", nargs="+", default=(), metavar="COL",
                   help="keep these columns although their names look like patient identifiers")
    p.add_argument("--preset", default="auto", choices=("auto", "none", *PRESETS), help="known corpus layout")
    p.add_argument("--images-dir", type=Path, default=None, metavar="DIR",
                   help="base folder of relative image paths (default: the CSV's folder or the preset's)")
    p.add_argument("--reports-dir", type=Path, default=None, metavar="DIR", help="MIMIC-CXR report .txt root")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where the model runs")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="auto (default): bf16 autocast where the CPU (AVX512-BF16/AMX) or GPU has native bf16, "
                   "else fp32; recorded in the manifest")
    p.add_argument("--index-type", default="auto", choices=INDEX_TYPES,
                   help="FAISS index: flat up to 200k vectors, IVF above (auto)")
    p.add_argument("--append", action="store_true", help="add corpus items the bundle lacks (same model)")
    p.add_argument("--shard", default=None, metavar="I/N", help="build only shard I of N (merge them afterwards)")
    p.add_argument("--workers", type=int, default=None, help="decode processes (default: by cores and device)")
    p.add_argument("--threads", type=int, default=None, help="torch threads for the model (default: all cores)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="images per forward (default 1 on CPU, the fastest there at 480 px; 64 on GPU)")
    p.add_argument("--limit", type=int, default=None, help="index at most N items of the corpus (trial runs)")
    p.add_argument("--progress", default="auto", choices=("auto", "bar", "log", "none"),
                   help="progress bar on a terminal, log lines otherwise (auto)")
    p.add_argument("--log-every", type=float, default=30.0, metavar="S", help="seconds between progress log lines")
    add_prior_options(p)
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run the shards as Ray tasks (retried, resumable) and merge them into --out; ADDRESS of a "
                   "running cluster (auto or host:port), or none to start a local one (needs: pip install ray)")
    p.add_argument("--ray-shards", type=int, default=4, metavar="N", help="shards (Ray tasks) for --ray (default 4)")
    p.add_argument("--label-sep", default=None, metavar="SEP",
                   help="separator of multi-label metadata cells, e.g. ';' for 'COVID-19;ARDS' (default: detect ';' "
                   "or '|'); recorded in the manifest and used by the filters")
    p.add_argument("--patch-store", choices=("fp16", "int8"), default=None,
                   help="patch embeddings on disk: fp16 (default), or int8 with one scale per patch (49%% smaller; "
                        "grounding maps within 0.01); an --append keeps the bundle's unless given")
    p.add_argument("--chunk-size", type=int, default=1024, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def add_prior_options(p: argparse.ArgumentParser) -> None:
    """--prior-col, --patient-col/--order-col and --priors PRESET (index/priors.py)."""
    from cxr_explorer.index.priors import PRIOR_PRESETS

    g = p.add_argument_group("priors (interval change; BioViL-T embeds each image with its prior study)")
    g.add_argument("--prior-col", default=None, metavar="COL", help="column naming each image's prior (id or path)")
    g.add_argument("--patient-col", default=None, metavar="COL",
                   help="with --order-col: the prior is the latest earlier study of the same patient (the column "
                   "is used for pairing only and never stored)")
    g.add_argument("--order-col", default=None, metavar="COL",
                   help="study order: a number, a date, or a covid study id like covid_p2_d3 (day 3)")
    g.add_argument("--priors", default=None, choices=("auto", *PRIOR_PRESETS), metavar="PRESET",
                   help=f"pair by a known layout's patient and order columns: {', '.join(PRIOR_PRESETS)}, or auto "
                   "(the corpus preset's)")


def prior_options(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The PriorOptions the flags ask for, or None; CliError for incomplete combinations."""
    from cxr_explorer.index.priors import PriorOptions

    if args.prior_col and (args.patient_col or args.order_col or args.priors):
        raise CliError("--prior-col cannot be combined with --patient-col/--order-col/--priors")
    if bool(args.patient_col) != bool(args.order_col) and not args.priors:
        raise CliError("--patient-col and --order-col go together (or use --priors PRESET)")
    if not (args.prior_col or args.patient_col or args.order_col or args.priors):
        return None
    preset = args.priors
    if preset == "auto":
        from cxr_explorer.index.presets import detect_preset

        preset = args.preset if args.preset not in ("auto", "none") else detect_preset(Path(args.corpus))
        if preset is None:
            raise CliError(f"--priors auto: {args.corpus} has no known layout; name the columns instead")
    return PriorOptions(args.prior_col, args.patient_col, args.order_col, preset)


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < (0 if name == "--workers" else 1):
        raise CliError(f"{name} must be {'>= 0' if name == '--workers' else '>= 1'}, got {value}")


def config_from_args(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """argparse namespace -> :class:`index.runner.BuildConfig` (CliError for bad values)."""
    from cxr_explorer.index.corpus import CorpusOptions
    from cxr_explorer.index.runner import BuildConfig
    from cxr_explorer.index.shards import parse_shard

    for name in ("--workers", "--threads", "--batch-size", "--limit", "--chunk-size"):
        _positive(name, getattr(args, name[2:].replace("-", "_")))
    try:
        shard = parse_shard(args.shard) if args.shard else None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    opts = CorpusOptions(image_col=args.image_col, text_cols=tuple(args.text_col) if args.text_col else None,
                         id_col=args.id_col, preset=args.preset, images_dir=args.images_dir,
                         reports_dir=args.reports_dir, hash_ids=args.hash_ids, keep_cols=tuple(args.keep_col))
    return BuildConfig(corpus=Path(args.corpus), out=Path(args.out), model=args.model, weights_dir=args.weights_dir,
                       corpus_options=opts, device=args.device, precision=args.precision,
                       index_type=args.index_type, append=args.append, shard=shard, workers=args.workers,
                       threads=args.threads, batch_size=args.batch_size, chunk_size=args.chunk_size,
                       limit=args.limit, progress=args.progress, log_every_s=args.log_every,
                       command=shlex.join(["cxr-explorer", "build", *sys.argv[2:]]) if sys.argv[1:2] == ["build"]
                       else "cxr-explorer build ...",
                       priors=prior_options(args), label_sep=_label_sep(args.label_sep),
                       patch_store=args.patch_store)


def _label_sep(value: str | None) -> str | None:
    """A --label-sep value: 1-3 visible characters (CliError otherwise)."""
    if value is None:
        return None
    if not 1 <= len(value) <= 3 or not value.strip() or any(c.isalnum() for c in value):
        raise CliError(f"--label-sep must be 1 to 3 punctuation characters such as ';' or '|', got {value!r}")
    return value


def _check_paths(args: argparse.Namespace) -> None:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out} exists and is not a folder")
    if args.weights_dir is not None and args.model.startswith("tiny-random"):
        raise CliError("tiny-random is a synthetic test model and takes no --weights-dir")
    if args.weights_dir is not None and not Path(args.weights_dir).is_dir():
        raise CliError(f"--weights-dir {args.weights_dir} is not a folder")


def _run_ray(cfg, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    """``--ray``: shards as Ray tasks, then one merge (index.ray_runner)."""
    from cxr_explorer.index.ray_runner import run_ray_build

    try:
        out = run_ray_build(cfg, args.ray_shards, None if args.ray == "local" else args.ray)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    except RuntimeError as exc:
        if "pip install ray" in str(exc):
            raise CliError(str(exc)) from None
        raise
    print(f"built {out} from {args.ray_shards} Ray shards")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the job and print its summary; problems found before any work are one-line errors."""
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    from cxr_explorer.index.build_state import BuildStateError
    from cxr_explorer.index.presets import CorpusError
    from cxr_explorer.index.runner import run_build

    _check_paths(args)
    cfg = config_from_args(args)
    try:
        if args.ray is not None:
            return _run_ray(cfg, args)
        summary = run_build(cfg)
    except (CorpusError, BuildStateError) as exc:
        raise CliError(str(exc)) from None
    except RuntimeError as exc:
        if "--device" in str(exc):
            raise CliError(str(exc)) from None
        raise
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            from cxr_explorer.retrieval.bundle.store.space import full_disk_message
            raise CliError(full_disk_message(cfg.out, None, None), exit_code=1) from None
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise CliError(f"cannot write the bundle in {cfg.out}: {exc.strerror}; fix that and rerun the same "
                           "command to resume") from None
        raise
    print(summary.line())
    if summary.count == 0:
        skipped = sum(summary.skipped_by_reason.values())
        print(f"cxr-explorer: WARNING: the bundle is EMPTY: every one of the {skipped} corpus items was skipped; "
              "the reasons are listed above and in its skipped.csv", file=sys.stderr)
        return 1
    return 0
