#!/usr/bin/env python3
"""A stand-in for Slurm's ``sbatch`` that runs jobs locally and at once, for testing scripts/slurm.

Supports what scripts/slurm uses: ``--parsable``, ``--array=A-B`` (or the script's ``#SBATCH --array=`` line),
``--dependency=afterok:ID`` (refused unless job ID succeeded), ``--wrap CMD``, ``--export=ALL``, ``--job-name``.
Array tasks run one after another with ``SLURM_ARRAY_TASK_ID`` / ``SLURM_ARRAY_JOB_ID`` set; the job fails when any
task fails. Job states live in ``$FAKE_SLURM_DIR``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    state = Path(os.environ["FAKE_SLURM_DIR"])
    state.mkdir(parents=True, exist_ok=True)
    opts: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--wrap":
            opts["wrap"] = argv[i + 1]
            i += 2
            continue
        if a.startswith("--"):
            key, _, value = a[2:].partition("=")
            opts[key] = value
        else:
            rest.append(a)
        i += 1
    dep = opts.get("dependency", "")
    if dep:
        wanted = dep.removeprefix("afterok:")
        if (state / f"{wanted}.state").read_text() != "ok":
            print(f"sbatch: dependency {dep} never satisfied", file=sys.stderr)
            return 1
    job = str(len(list(state.glob("*.state"))) + 1000)
    log = (state / f"{job}.out").open("w")  # like Slurm's --output: the job's output never goes to the caller
    if "wrap" in opts:
        codes = [subprocess.call(["bash", "-c", opts["wrap"]], stdout=log, stderr=subprocess.STDOUT)]
    else:
        script = rest[0]
        array = opts.get("array") or next((m.group(1) for m in re.finditer(r"^#SBATCH --array=(\S+)",
                                                                            Path(script).read_text(), re.M)), "0-0")
        lo, hi = (int(v) for v in array.split("-"))
        codes = [subprocess.call(["bash", script], stdout=log, stderr=subprocess.STDOUT,
                                 env={**os.environ, "SLURM_ARRAY_TASK_ID": str(t), "SLURM_ARRAY_JOB_ID": job})
                 for t in range(lo, hi + 1)]
    log.close()
    (state / f"{job}.state").write_text("ok" if not any(codes) else "failed")
    print(job if "parsable" in opts else f"Submitted batch job {job}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
