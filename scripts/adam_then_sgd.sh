#!/usr/bin/env bash
# Lesson 8: switching optimizers. Digits for 20 epochs with Adam for 10 epochs then SGD, against Adam alone and
# SGD alone (each at its own default step size, the same ones the switch uses).
#   scripts/adam_then_sgd.sh [extra overrides...]
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_lesson.sh"
sweep_dir=$(lesson_dir adam_then_sgd)

sweep "$sweep_dir" experiment=adam_then_sgd optimizer=adam_then_sgd,adam,sgd "$@"

"${dlexp[@]}" compare "$sweep_dir" --columns val/loss,val/acc,optim/phase,optim/lr --plot "$sweep_dir/val_loss.png" --log
echo "TensorBoard: dlexp board $sweep_dir   (Scalars: optim/phase, optim/lr, val/loss)"
exit "$code"
