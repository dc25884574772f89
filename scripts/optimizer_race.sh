#!/usr/bin/env bash
# Lesson 7: nine optimizers, the same problem (digits, full batch), seed and number of steps (200), each at its
# default settings; the table is sorted by final validation loss. Gradient methods beat both random searches.
#   scripts/optimizer_race.sh [extra overrides...]     e.g. scripts/optimizer_race.sh trainer.epochs=500
# DLEXP (default: dlexp) is the command to run, RUNS (default: runs) the folder the sweep goes under.
set -euo pipefail

read -ra dlexp <<< "${DLEXP:-dlexp}"
sweep="${RUNS:-runs}/lessons/optimizer_race/$(date +%Y%m%d-%H%M%S)-$$"

code=0
"${dlexp[@]}" train -m experiment=optimizer_race \
    optimizer=sgd,momentum,nesterov,adagrad,rmsprop,adam,adamw,random_search,random_local_search \
    hydra.sweep.dir="$sweep" "$@" || code=$?
case $code in 0|1|3) ;; *) exit "$code" ;; esac   # 2: nothing ran (bad overrides); 130/143: interrupted

"${dlexp[@]}" compare "$sweep" --sort val/loss --plot "$sweep/val_loss.png" --log
echo "TensorBoard: dlexp board $sweep"
exit "$code"
