#!/usr/bin/env bash
# Lesson 1: a perceptron cannot learn XOR, an MLP can. Trains both presets (same data, loss, optimizer, seed and
# 10,001 epochs) in one sweep and prints the table: the perceptron ends at <= 75% accuracy, the MLP at 100%.
#   scripts/xor.sh [extra overrides...]         e.g. scripts/xor.sh trainer.epochs=6000
# DLEXP (default: dlexp) is the command to run, RUNS (default: runs) the folder the sweep goes under.
set -euo pipefail

read -ra dlexp <<< "${DLEXP:-dlexp}"
sweep="${RUNS:-runs}/lessons/xor/$(date +%Y%m%d-%H%M%S)-$$"   # explicit, so the script knows where to look

code=0
"${dlexp[@]}" train -m experiment=xor_perceptron,xor_mlp hydra.sweep.dir="$sweep" "$@" || code=$?
case $code in 0|1|3) ;; *) exit "$code" ;; esac   # 2: nothing ran (bad overrides); 130/143: interrupted

"${dlexp[@]}" compare "$sweep" --plot "$sweep/val_loss.png" --log
echo "TensorBoard: dlexp board $sweep"
exit "$code"
