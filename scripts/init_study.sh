#!/usr/bin/env bash
# Lesson 3: weight initialisation. Five layers of 100 units on N(0,1) inputs, never trained, under four initializers
# and two activations (8 runs, a few seconds). The table's hist/saturated column is the share of sigmoid outputs
# within 0.01 of 0 or 1, hist/dead the share of ReLU units that never fire; the layer-by-layer story (act_std/<i>_<act>)
# is in TensorBoard.
#   scripts/init_study.sh [extra overrides...]     e.g. scripts/init_study.sh 'model.activation=tanh'
# DLEXP (default: dlexp) is the command to run, RUNS (default: runs) the folder the sweep goes under.
set -euo pipefail

read -ra dlexp <<< "${DLEXP:-dlexp}"
sweep="${RUNS:-runs}/lessons/init_study/$(date +%Y%m%d-%H%M%S)-$$"

code=0
"${dlexp[@]}" train -m experiment=init_study initializer=normal,normal_small,xavier_normal,he_normal \
    model.activation=sigmoid,relu hydra.sweep.dir="$sweep" "$@" || code=$?
case $code in 0|1|3) ;; *) exit "$code" ;; esac   # 2: nothing ran (bad overrides); 130/143: interrupted

"${dlexp[@]}" compare "$sweep"                     # nothing is trained, so there is no loss curve to plot
echo "TensorBoard: dlexp board $sweep   (Histograms: activations/<i>_<act>; Scalars: act_std/, saturation/, dead/)"
exit "$code"
