#!/usr/bin/env bash
# Lesson 3: weight initialisation. Five layers of 100 units on N(0,1) inputs, never trained, under four initializers
# and two activations (8 runs, a few seconds). The table's hist/saturated column is the share of sigmoid outputs
# within 0.01 of 0 or 1, hist/dead the share of ReLU units that never fire; the layer-by-layer story (act_std/<i>_<act>)
# is in TensorBoard. hydra/launcher=vectorized: the four networks of each activation are one stacked model.
#   scripts/init_study.sh [extra overrides...]     e.g. scripts/init_study.sh 'model.activation=tanh'
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_lesson.sh"
sweep_dir=$(lesson_dir init_study)

sweep "$sweep_dir" hydra/launcher=vectorized experiment=init_study \
    initializer=normal,normal_small,xavier_normal,he_normal model.activation=sigmoid,relu "$@"

# nothing is trained, so there is no loss curve to plot; the columns: the share of saturated sigmoids and
# dead ReLUs, and the spread of the last layer's activations; activations.png: a row per run, a column per layer
"${dlexp[@]}" compare "$sweep_dir" --columns hist/saturated,hist/dead,act_std/5_sigmoid,act_std/5_relu \
    --histograms "$sweep_dir/activations.png"
echo "TensorBoard: dlexp board $sweep_dir   (Histograms: activations/<i>_<act>; Scalars: act_std/, saturation/, dead/)"
exit "$code"
