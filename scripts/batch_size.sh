#!/usr/bin/env bash
# Lesson 6: batch size. Digits for 10 epochs with the whole training set per step, then 1, 32 and 128 samples per
# step: 1, 1438, 45 and 12 steps per epoch (ceil(1438 / batch)). Smaller batches: more and noisier steps per epoch.
# Batch size 1 takes 14,380 steps: 15-30 s of the ~45 s this script needs on a 2-core CPU.
#   scripts/batch_size.sh [extra overrides...]
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_lesson.sh"
sweep_dir=$(lesson_dir batch_size)

sweep "$sweep_dir" experiment=batch_size batch.size=null,1,32,128 "$@"

"${dlexp[@]}" compare "$sweep_dir" --columns val/acc,data/steps_per_epoch,hist/dead,wall_time \
    --plot "$sweep_dir/val_loss.png"
echo "TensorBoard: dlexp board $sweep_dir   (Scalars: train/step_loss with smoothing 0; data/steps_per_epoch)"
exit "$code"
