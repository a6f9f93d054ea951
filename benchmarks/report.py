"""The markdown summary of a results JSON (printed by ``benchmarks.run`` and written next to it as ``.md``)."""

from __future__ import annotations

import json
from typing import Any

from benchmarks.browser import GOALS_MS


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _bytes(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def machine_line(m: dict[str, Any]) -> str:
    """One line naming the machine the figures came from."""
    return (f"Machine: {m['cpu_model']}, {m['cores']} cores ({m['cores_available']} usable), torch threads "
            f"{m['torch_threads']}, load average at start {m['loadavg_at_start']}, GPU: {m['gpu']}")


def build_table(b: dict[str, Any]) -> list[str]:
    lines = ["| precision | encoder img/s | whole job items/s | build_ratio | image stage img/s | image stage ratio "
             "| job time in the model | text share of model time | reports/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for p, r in b["precisions"].items():
        lines.append(f"| {p} | {_fmt(r['encoder_images_per_s'])} | {_fmt(r['job_images_per_s'])} | "
                     f"{_fmt(r['build_ratio'])} | {_fmt(r['image_stage_images_per_s'])} | "
                     f"{_fmt(r['image_stage_ratio'])} | {_fmt(r.get('model_share_of_job'))} | "
                     f"{_fmt(r.get('text_share_of_model'))} | {_fmt(r['reports_per_s'])} |")
    lines.append(f"\nbatch {b['batch']}, {b['images']} items per job run (whole job = index.runner.run_build on "
                 f"covid_chestxray: decode, image + report/sentence embedding, chunks, finalise); image stage: "
                 f"{b['image_stage_mode']}; ratios are paired within each round, then the median is taken; "
                 f"{b['reports']} reports of {b['report_tokens_mean']} tokens on average (30,522-token vocab of "
                 f"corpus words); peak RSS after the build section {b['peak_rss_mib_after_build']} MiB")
    overhead = {p: r.get("build_overhead") for p, r in b["precisions"].items()}
    lines.append(f"\nbuild_overhead (whole-job time / (image-model + text-model time)): {overhead}")
    return lines


def query_table(q: dict[str, Any]) -> list[str]:
    te = q["text_encode"]
    lines = [f"Text encode (cold, one phrase): p50 {te['p50_ms']} ms, p95 {te['p95_ms']} ms",
             "", "| vectors | index | search p50 / p95 ms | total p50 / p95 ms | cached-query p50 ms | recall@10 | "
             "index memory | build s |", "|---|---|---|---|---|---|---|---|"]
    for n, rows in q["sizes"].items():
        for kind, r in rows.items():
            lines.append(f"| {int(n):,} | {kind} {r['params'] or ''} | {r['search']['p50_ms']} / "
                         f"{r['search']['p95_ms']} | {r['total']['p50_ms']} / {r['total']['p95_ms']} | "
                         f"{r['cached_total']['p50_ms']} | {r['recall_at_10']} | {_bytes(r['memory_bytes'])} | "
                         f"{r['build_s']} |")
    return lines


def grounding_lines(g: dict[str, Any]) -> list[str]:
    t = g["target"]
    return [
        "| way | p50 ms | p95 ms |", "|---|---|---|",
        f"| ours: stored patches + text encode + map | {g['ours']['p50_ms']} | {g['ours']['p95_ms']} |",
        f"| ours, phrase already cached | {g['ours_cached_text']['p50_ms']} | {g['ours_cached_text']['p95_ms']} |",
        f"| reference way: decode + preprocess + image forward + text + map | {g['reference_way']['p50_ms']} | "
        f"{g['reference_way']['p95_ms']} |",
        "", f"grounding_speedup = {g['grounding_speedup']}x (ratio of p50s; median of per-round ratios "
        f"{g['grounding_speedup_paired_median']}x) (cold text; target >= {t['speedup_min']}x with ours "
        f"p50 <= {t['ours_p50_ms_max']} ms: {'met' if t['met'] else 'NOT met'}); with the phrase cached "
        f"{g['grounding_speedup_cached_text']}x ({'met' if t['met_with_cached_text'] else 'NOT met'}). "
        f"Image {g['image']} ({g['width']}x{g['height']}), '{g['phrase']}', {g['interpolation']}. "
        f"{g['reference_note']}.",
    ]


def app_lines(app: dict[str, Any]) -> list[str]:
    """The app section: beyond-encoder times of a new search and a grounding update, and RSS."""
    if "status" in app:
        return [f"{app['status']}: {app.get('reason', '')}"]
    s, g, t = app["search_beyond_encoder"], app["grounding_beyond_encoder"], app["targets_ms"]
    return ["| action (beyond the text encoder) | p50 ms | p95 ms | target |", "|---|---|---|---|",
            f"| new text search, Search page | {s['p50_ms']} | {s['p95_ms']} | <= {t['search']} ms |",
            f"| grounding update, Grounding page | {g['p50_ms']} | {g['p95_ms']} | <= {t['grounding']} ms |", "",
            f"{app['items']:,}-item bundle; process RSS with it loaded {app['rss_mib_with_bundle']} MiB; "
            f"{app['method']}."]


def _verdict(name: str, ms: float) -> str:
    goal = GOALS_MS.get(name)
    return "" if goal is None else f" (goal {goal}: {'met' if ms <= goal else 'NOT met'})"


def browser_lines(b: dict[str, Any]) -> list[str]:
    """Per bundle: each browser action's p50/p95 (benchmarks/browser.py), the CPU of a search and its floor for the
    concurrent sessions, and the concurrent sessions from Chromium pages and from protocol clients."""
    if "status" in b:
        return [f"{b['status']}: {b.get('reason', '')}"]
    out: list[str] = []
    for name, r in b.items():
        acts, cost = dict(r["actions"]), r["search_cost"]
        failed = acts.pop("failed", {})
        out += [f"### {name} ({r['items']:,} items, model {r['model']})", "",
                "| action (input -> page idle) | p50 ms | p95 ms | n | failed | Playwright p50 ms |",
                "|---|---|---|---|---|---|"]
        out += [f"| {a}{_verdict(a, v['p50_ms'])} | {v['p50_ms']:.0f} | {v['p95_ms']:.0f} | {v['n']} | "
                f"{failed.get(a, 0)} | {v.get('driver_p50_ms', '-')} |" for a, v in acts.items()]
        out += [f"| {a} | - | - | 0 | {n} | - |" for a, n in failed.items() if a not in acts]
        out += ["", f"CPU per search ({cost['searches']} searches): Chromium's processes {cost['browser_cpu_ms']} ms, "
                f"the server {cost['server_cpu_ms']} ms, the Playwright driver {cost['driver_cpu_ms']} ms; so "
                f"{cost['sessions']} searches at once with their browsers on these {cost['cores']} cores take at least "
                f"{cost['floor_ms']:.0f} ms."]
        for key, what in (("concurrent", "Chromium pages (rendering on the server's cores)"),
                          ("concurrent_protocol", "protocol clients (the server's whole work, nothing rendered)")):
            c = r[key]
            out += ["", f"{c['sessions']} concurrent sessions from {what}, {c.get('n', 0)} searches: p50 "
                    f"{c.get('p50_ms', 0):.0f} ms, p95 {c.get('p95_ms', 0):.0f} ms"
                    f"{_verdict('concurrent', c.get('p95_ms', 1e9))}, errors {c['errors']}"]
        out.append("")
    return out


def priors_lines(p: dict[str, Any]) -> list[str]:
    """Build rate of the same covid subset without and with priors (benchmarks/priors.py)."""
    if p.get("status") == "skipped":
        return [f"skipped: {p.get('note', '')}"]
    w, wo = p["with"], p["without"]
    return ["| build | wall s | items/s | pairs embedded | pairs/s |", "|---|---|---|---|---|",
            f"| without priors | {_fmt(wo['wall_s'])} | {_fmt(wo['items_per_s'], 3)} | - | - |",
            f"| with priors | {_fmt(w['wall_s'])} | {_fmt(w['items_per_s'], 3)} | {w.get('pairs', 0)} | "
            f"{_fmt(w.get('pairs_per_s'), 3)} |", "",
            f"{p['items']} covid_chestxray images, model {p['model']}; with/without wall ratio "
            f"**{_fmt(p['priors_cost_ratio'])}**."]


def scale_markdown(res: dict[str, Any]) -> list[str]:
    """Markdown blocks of the scale sections present in ``res`` (their JSON, compactly)."""
    from benchmarks.run import SCALE_SECTIONS

    out: list[str] = []
    for name in SCALE_SECTIONS:
        if name in res:
            out += [f"## {name}", "", "```json", json.dumps(res[name], indent=1), "```", ""]
    return out


def to_markdown(res: dict[str, Any]) -> str:
    """The whole results JSON as a markdown report."""
    out = [f"# Benchmark results ({res['mode']}, {res['created']})", "", machine_line(res["machine"]), "",
           f"Model: {res['model']['name']} ({res['model']['note']})", ""]
    if "build" in res:
        out += ["## Build", "", *build_table(res["build"]), ""]
    if "query" in res:
        out += ["## Query", "", *query_table(res["query"]), ""]
    if "grounding" in res:
        out += ["## Grounding", "", *grounding_lines(res["grounding"]), ""]
    if "priors" in res:
        out += ["## Build with priors (BioViL-T temporal stage)", "", *priors_lines(res["priors"]), ""]
    app = res.get("app", {})
    out += ["## App", "", *app_lines(app), ""]
    if "curate" in res:
        from benchmarks.curate import curate_lines

        out += ["## Curate", "", *curate_lines(res["curate"]), ""]
    if "browser" in res:


        out += ["## Browser (headless Chromium)", "", *browser_lines(res["browser"]), ""]
    gpu = res.get("gpu", {})
    out += ["## GPU", "", str(gpu.get("note")) if not gpu.get("available") else
            f"{gpu['gpu']}: encoder img/s {gpu['encoder_images_per_s']}; FAISS {gpu.get('faiss')}", ""]
    out += scale_markdown(res)
    out += [f"Wall time of the run: {res['wall_s']} s; peak RSS {res['peak_rss_mib']} MiB.", ""]
    return "\n".join(out)
