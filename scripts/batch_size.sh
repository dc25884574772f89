#!/usr/bin/env bash
# Lesson 6: batch size. Digits for 10 epochs with the whole training set per step, then 1, 32 and 128 samples per
# step: 1, 1438, 45 and 12 steps per epoch (ceil(1438 / batch)). Smaller batches: more and noisier steps per epoch.
# Batch size 1 takes 14,380 steps: 15-30 s of the ~45 s this script needs on a 2-core CPU.
#   scripts/batch_size.sh [extra overrides...]
# DLEXP (default: dlexp) is the command to run, RUNS (default: runs) the folder the sweep goes under.
set -euo pipefail

read -ra dlexp <<< "${DLEXP:-dlexp}"
sweep="${RUNS:-runs}/lessons/batch_size/$(date +%Y%m%d-%H%M%S)-$$"

code=0
"${dlexp[@]}" train -m experiment=batch_size batch.size=null,1,32,128 hydra.sweep.dir="$sweep" "$@" || code=$?
case $code in 0|1|3) ;; *) exit "$code" ;; esac   # 2: nothing ran (bad overrides); 130/143: interrupted

"${dlexp[@]}" compare "$sweep" --plot "$sweep/val_loss.png"
echo "TensorBoard: dlexp board $sweep   (Scalars: train/step_loss with smoothing 0; data/steps_per_epoch)"
exit "$code"
