#!/usr/bin/env bash
# Lesson 1: a perceptron cannot learn XOR, an MLP can. Trains both presets (same data, loss, optimizer, seed and
# 10,001 epochs) in one sweep and prints the table: the perceptron ends at <= 75% accuracy, the MLP at 100%.
#   scripts/xor.sh [extra overrides...]         e.g. scripts/xor.sh trainer.epochs=6000
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_lesson.sh"
sweep_dir=$(lesson_dir xor)

sweep "$sweep_dir" experiment=xor_perceptron,xor_mlp "$@"

"${dlexp[@]}" compare "$sweep_dir" --columns val/acc,val/loss,epochs --plot "$sweep_dir/val_loss.png" --log \
    --boundaries "$sweep_dir/boundaries.png"
echo "TensorBoard: dlexp board $sweep_dir   (Images: boundary/prediction, units/<layer>)"
exit "$code"
