#!/usr/bin/env bash
# Lesson 8: switching optimizers. Digits for 20 epochs with Adam for 10 epochs then SGD, against Adam alone and
# SGD alone (each at its own default step size, the same ones the switch uses).
#   scripts/adam_then_sgd.sh [extra overrides...]
# DLEXP (default: dlexp) is the command to run, RUNS (default: runs) the folder the sweep goes under.
set -euo pipefail

read -ra dlexp <<< "${DLEXP:-dlexp}"
sweep="${RUNS:-runs}/lessons/adam_then_sgd/$(date +%Y%m%d-%H%M%S)-$$"

code=0
"${dlexp[@]}" train -m experiment=adam_then_sgd optimizer=adam_then_sgd,adam,sgd \
    hydra.sweep.dir="$sweep" "$@" || code=$?
case $code in 0|1|3) ;; *) exit "$code" ;; esac   # 2: nothing ran (bad overrides); 130/143: interrupted

"${dlexp[@]}" compare "$sweep" --plot "$sweep/val_loss.png" --log
echo "TensorBoard: dlexp board $sweep   (Scalars: optim/phase, optim/lr, val/loss)"
exit "$code"
