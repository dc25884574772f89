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
part() {  # part NAME COLUMNS OVERRIDES...: one sweep under $root/NAME and its table with these columns
    local name=$1 columns=$2
    shift 2
    sweep "$root/$name" "$@"
    "${dlexp[@]}" compare "$root/$name" --columns "$columns"
    (( code != 0 && worst == 0 )) && worst=$code   # the first problem decides the exit code
    return 0
}

# weight/1_linear is the fitted slope (true 2.0), bias/1_linear the intercept (true 0.5)
part regression weight/1_linear,bias/1_linear,val/loss experiment=losses_regression loss=mse,mae,huber "$@"
part classification val/loss,val/acc experiment=losses_classification loss=ce,sparse_ce "$@"
part gaussian_nll val/loss experiment=losses_gaussian_nll "$@"
echo "TensorBoard: dlexp board $root   (regression: Scalars weight/1_linear = the slope)"
exit "$worst"
