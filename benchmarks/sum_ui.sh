#!/usr/bin/env bash
# SUM with three real conditions (issue 19; BENCHMARKS.md, "SUM with web pages"): the run of
# configs/sum-lite0-ui.yaml scored under each condition on EYEVIDO val (every page, and the pages
# with at least 5 viewers beside their gold standard) and on OSIE val, then paired differences.
#   bash benchmarks/sum_ui.sh [RUN_DIR] [RESULTS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
run="${1:-runs/sum-ui}"
out="${2:-results/sum-ui}"
mkdir -p "$out"
weights="$run/best.safetensors"
eyevido=(--dataset eyevido --root ../shared/data/eyevido --split val)
osie=(--dataset osie --root ../shared/data/osie --split val)
for kind in ui eye mouse; do
    salience eval "${eyevido[@]}" -m center-bias --checkpoint "$weights" --condition "$kind" \
        --out "$out/eyevido-val-$kind.json"
    salience eval "${eyevido[@]}" --min-observers 5 -m center-bias -m gold-standard \
        --checkpoint "$weights" --condition "$kind" --out "$out/eyevido-val5-$kind.json"
    salience eval "${osie[@]}" -m center-bias -m gold-standard --checkpoint "$weights" \
        --condition "$kind" --out "$out/osie-val-$kind.json"
done
model="sum-lite0 ($(basename "$weights"))"  # the row salience eval wrote
for data in eyevido-val eyevido-val5 osie-val; do
    for kind in eye mouse; do
        salience eval-diff "$out/$data-$kind.json" "$out/$data-ui.json" --model-a "$model" \
            --model-b "$model" > "$out/$data-ui-minus-$kind.txt"
    done
done
