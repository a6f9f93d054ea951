#!/bin/bash
# Submit the shard array, then a merge that runs once every task succeeded (afterok). Same variables as
# index.sbatch (CORPUS, OUT, N, CXR, MODEL, BUILD_ARGS); the merged bundle is $OUT/all.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
N="${N:-8}"
CXR="${CXR:-cxr-explorer}"
export N CXR
jid=$(sbatch --parsable --export=ALL --array="0-$((N - 1))" "$here/index.sbatch")
shards=""
for i in $(seq 0 $((N - 1))); do shards="$shards $OUT/shard-$i"; done
sbatch --parsable --export=ALL --dependency="afterok:$jid" --job-name=cxr-merge \
    --wrap "$CXR merge$shards --out $OUT/all"
