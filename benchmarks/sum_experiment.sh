#!/usr/bin/env bash
# SUM's unification experiment (BENCHMARKS.md, "SUM"): the three training runs that
# benchmarks/sum_unification.py compares, each from configs/sum-lite0.yaml.
#   bash benchmarks/sum_experiment.sh [RUNS_DIR] [extra overrides...]
# RUNS_DIR defaults to runs/; a run whose folder already holds last.safetensors is resumed.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-runs}"
shift || true
osie="root: ../shared/data/osie, split: train"
scene="root: ../shared/data/nus-scene, split: train"

train() {  # train NAME OVERRIDES...
    local name="$1"
    shift
    local resume=()
    [[ -f "$runs/$name/last.safetensors" ]] && resume=(--resume)
    salience train configs/sum-lite0.yaml --out "$runs/$name" "${resume[@]}" "$@"
}

# conditioned: eye tracking is condition 1, mouse tracking condition 0 (the config as it is)
train sum-cond "$@"
# condition ignored: the same three sources, all condition 1
train sum-nocond "data.train=[{name: osie, $osie, condition: 1},
    {name: osie-mouse-lab, $osie, condition: 1}, {name: nus-scene, $scene, condition: 1}]" "$@"
# eye tracking alone
train sum-eye "data.train=[{name: osie, $osie, condition: 1},
    {name: nus-scene, $scene, condition: 1}]" "$@"
# eye tracking alone for as many optimizer steps as the runs on all three sources (7 x 100 >= 4 x 162)
train sum-eye-steps "data.train=[{name: osie, $osie, condition: 1},
    {name: nus-scene, $scene, condition: 1}]" train.epochs=7 "$@"
