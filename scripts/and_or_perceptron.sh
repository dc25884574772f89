#!/usr/bin/env bash
# Lesson 2: AND and OR are linearly separable, so one perceptron learns each (100%); XOR, next to them, is not.
#   scripts/and_or_perceptron.sh [extra overrides...]
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_lesson.sh"
sweep_dir=$(lesson_dir and_or_perceptron)

sweep "$sweep_dir" experiment=and_or_perceptron data=and,or,xor "$@"

"${dlexp[@]}" compare "$sweep_dir" --columns val/acc,val/loss --plot "$sweep_dir/val_loss.png" \
    --boundaries "$sweep_dir/boundaries.png"
echo "TensorBoard: dlexp board $sweep_dir   (Images: boundary/prediction)"
exit "$code"
