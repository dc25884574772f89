#!/usr/bin/env bash
# Lesson 9: loss functions, in three parts, each its own preset and table:
#   1. losses_regression      a line through outliers under mse, mae and huber (the robust two find the true slope)
#   2. losses_classification  ce (one-hot targets) and sparse_ce (integer labels): the same loss at every step
#   3. losses_gaussian_nll    a sine whose noise grows: the model learns a mean and a growing variance
# Note: val/loss is each run's OWN loss, so compare it within a part, never across losses in part 1.
#   scripts/losses.sh [extra overrides for every part...]
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_lesson.sh"
root=$(lesson_dir losses)

worst=0
part() {  # part NAME OVERRIDES...: one sweep under $root/NAME and its table
    local name=$1
    shift
    sweep "$root/$name" "$@"
    "${dlexp[@]}" compare "$root/$name"
    (( code != 0 && worst == 0 )) && worst=$code   # the first problem decides the exit code
    return 0
}

part regression experiment=losses_regression loss=mse,mae,huber "$@"
part classification experiment=losses_classification loss=ce,sparse_ce "$@"
part gaussian_nll experiment=losses_gaussian_nll "$@"
echo "TensorBoard: dlexp board $root   (regression: Distributions weights/1_linear = the slope)"
exit "$worst"
