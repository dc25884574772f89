#!/usr/bin/env bash
# Lesson 4: symmetry breaking. XOR with a 2-16-16-1 tanh MLP from three starts: all zeros (nothing ever moves),
# all 0.5 (the units move but stay copies of each other) and Xavier-random (the units differ and XOR is solved).
# The three runs differ only in their starting weights: one stacked model (hydra/launcher=vectorized).
#   scripts/symmetry.sh [extra overrides...]
# initializer.value belongs to `constant` alone (zeros and xavier_normal have none); to start from another constant:
#   dlexp train -m experiment=symmetry initializer=constant initializer.value=0.5,0.1
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_lesson.sh"
sweep_dir=$(lesson_dir symmetry)

sweep "$sweep_dir" hydra/launcher=vectorized experiment=symmetry initializer=zeros,constant,xavier_normal "$@"

"${dlexp[@]}" compare "$sweep_dir" --columns val/acc,val/loss --plot "$sweep_dir/val_loss.png"
echo "TensorBoard: dlexp board $sweep_dir   (Histograms: weights/1_linear, weights/2_linear, activations/1_tanh)"
exit "$code"
