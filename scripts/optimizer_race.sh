#!/usr/bin/env bash
# Lesson 7: nine optimizers, the same problem (digits, full batch), seed and number of steps (200), each at its
# default settings; the table is sorted by final validation loss. Gradient methods beat both random searches.
# hydra/launcher=vectorized stacks each optimizer family: sgd, momentum and nesterov train as one model, adam and
# adamw as another; the other four run one after another.
#   scripts/optimizer_race.sh [extra overrides...]     e.g. scripts/optimizer_race.sh trainer.epochs=500
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_lesson.sh"
sweep_dir=$(lesson_dir optimizer_race)

sweep "$sweep_dir" hydra/launcher=vectorized experiment=optimizer_race \
    optimizer=sgd,momentum,nesterov,adagrad,rmsprop,adam,adamw,random_search,random_local_search "$@"

"${dlexp[@]}" compare "$sweep_dir" --sort val/loss --columns val/loss,val/acc --plot "$sweep_dir/val_loss.png" --log
echo "TensorBoard: dlexp board $sweep_dir"
exit "$code"
