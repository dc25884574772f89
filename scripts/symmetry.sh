#!/usr/bin/env bash
# Lesson 4: symmetry breaking. XOR with a 2-16-16-1 tanh MLP from three starts: all zeros (nothing ever moves),
# all 0.5 (the units move but stay copies of each other) and Xavier-random (the units differ and XOR is solved).
#   scripts/symmetry.sh [extra overrides...]
# DLEXP (default: dlexp) is the command to run, RUNS (default: runs) the folder the sweep goes under.
set -euo pipefail

read -ra dlexp <<< "${DLEXP:-dlexp}"
sweep="${RUNS:-runs}/lessons/symmetry/$(date +%Y%m%d-%H%M%S)-$$"

code=0
"${dlexp[@]}" train -m experiment=symmetry initializer=zeros,constant,xavier_normal \
    hydra.sweep.dir="$sweep" "$@" || code=$?
case $code in 0|1|3) ;; *) exit "$code" ;; esac   # 2: nothing ran (bad overrides); 130/143: interrupted

"${dlexp[@]}" compare "$sweep" --plot "$sweep/val_loss.png"
echo "TensorBoard: dlexp board $sweep   (Histograms: weights/1_linear, weights/2_linear, activations/1_tanh)"
exit "$code"
