#!/usr/bin/env bash
# Lesson 12: luck. The XOR MLP of lesson 1 (experiment=xor_mlp: 2-10-10-10-1 sigmoid, SGD lr 1, full batch) from 16
# seeds. Every run starts on the ln 2 plateau; which runs leave it, and when, is decided by the starting weights alone.
# The 16 runs share everything but the seed, so they train as one stacked model (hydra/launcher=vectorized): the
# sweep takes about the time of one run.
#   scripts/seeds.sh [extra overrides...]     e.g. scripts/seeds.sh trainer.epochs=20000
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_lesson.sh"
sweep_dir=$(lesson_dir seeds)

sweep "$sweep_dir" hydra/launcher=vectorized experiment=xor_mlp 'seed=range(16)' "$@"

# one row per seed, best first; val_loss.png: where each curve leaves ln 2 = 0.693 (or does not)
"${dlexp[@]}" compare "$sweep_dir" --no-group --sort val/loss --columns val/acc,val/loss \
    --plot "$sweep_dir/val_loss.png" --log
# the 16 seeds as one group: mean and spread of the final numbers
"${dlexp[@]}" compare "$sweep_dir" --columns val/acc,val/loss
echo "TensorBoard: dlexp board $sweep_dir   (Scalars: val/loss of the 16 runs; aggregate/ holds their mean and spread)"
exit "$code"
