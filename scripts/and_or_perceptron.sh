#!/usr/bin/env bash
# Lesson 2: AND and OR are linearly separable, so one perceptron learns each (100%); XOR, next to them, is not.
#   scripts/and_or_perceptron.sh [extra overrides...]
# DLEXP (default: dlexp) is the command to run, RUNS (default: runs) the folder the sweep goes under.
set -euo pipefail

read -ra dlexp <<< "${DLEXP:-dlexp}"
sweep="${RUNS:-runs}/lessons/and_or_perceptron/$(date +%Y%m%d-%H%M%S)-$$"

code=0
"${dlexp[@]}" train -m experiment=and_or_perceptron data=and,or,xor hydra.sweep.dir="$sweep" "$@" || code=$?
case $code in 0|1|3) ;; *) exit "$code" ;; esac   # 2: nothing ran (bad overrides); 130/143: interrupted

"${dlexp[@]}" compare "$sweep" --plot "$sweep/val_loss.png"
echo "TensorBoard: dlexp board $sweep"
exit "$code"
