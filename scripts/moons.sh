#!/usr/bin/env bash
# Lesson 11: decision boundaries. On two interleaving half-moons, a perceptron (no hidden layer) can only draw a
# straight line; 3 tanh units bend it; two layers of 16 follow the moons. Prints the table and writes
# boundaries.png: the three final pictures side by side (the same colours as TensorBoard's Images tab).
#   scripts/moons.sh [extra overrides...]         e.g. scripts/moons.sh data.noise=0.3
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_lesson.sh"
sweep_dir=$(lesson_dir moons)

sweep "$sweep_dir" experiment=moons 'model.hidden=[],[3],[16,16]' "$@"

"${dlexp[@]}" compare "$sweep_dir" --plot "$sweep_dir/val_loss.png" --boundaries "$sweep_dir/boundaries.png"
echo "TensorBoard: dlexp board $sweep_dir   (Images: boundary/prediction, units/<layer>)"
exit "$code"
