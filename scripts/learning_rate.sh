#!/usr/bin/env bash
# Lesson 5: the learning rate. The same MLP, data and seed with lr = 0.0001 ... 1.0 (a decade apart): the smallest
# crawls (val/loss 0.26 -> 0.15 in 500 epochs), 0.1 converges (0.016-0.018), 1.0 diverges within ~20 steps (status "diverged").
# The diverging run is the point of the lesson: the sweep then exits 3, and this script still prints the table
# and exits 0. The five runs share everything but the learning rate, so they train as one stacked model
# (hydra/launcher=vectorized).
#   scripts/learning_rate.sh [extra overrides...]     e.g. scripts/learning_rate.sh optimizer=momentum
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_lesson.sh"
sweep_dir=$(lesson_dir learning_rate)

sweep "$sweep_dir" hydra/launcher=vectorized experiment=learning_rate optimizer.lr=0.0001,0.001,0.01,0.1,1.0 "$@"

"${dlexp[@]}" compare "$sweep_dir" --columns train/loss,val/loss,hist/saturated,epochs --plot "$sweep_dir/val_loss.png" --log
echo "TensorBoard: dlexp board $sweep_dir"
[[ $code -eq 3 ]] && code=0                        # 3 = a run diverged: expected here (lr=1.0)
exit "$code"
