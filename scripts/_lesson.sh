# Sourced by every lesson script: how a lesson's sweep is run, where it goes and what its exit code means.
# DLEXP is the command to run (default: dlexp on PATH, else this checkout's .venv/bin/dlexp, which `make run`
# makes: the scripts run without activating the venv), RUNS (default: runs) the folder lessons go under.

if [[ -n "${DLEXP:-}" ]]; then
    read -ra dlexp <<< "$DLEXP"
elif command -v dlexp > /dev/null; then
    dlexp=(dlexp)
else
    venv_dlexp="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/dlexp"
    if [[ ! -x "$venv_dlexp" ]]; then
        echo "$(basename "$0"): dlexp is not on PATH and $venv_dlexp does not exist: run make run in the dlexp" \
             "folder, or source .venv/bin/activate." >&2
        exit 127
    fi
    dlexp=("$venv_dlexp")
fi

# lesson_dir NAME: a fresh folder for this run of the lesson, $RUNS/lessons/NAME/<time>-<pid>
lesson_dir() {
    echo "${RUNS:-runs}/lessons/$1/$(date +%Y%m%d-%H%M%S)-$$"
}

# sweep DIR OVERRIDES...: `dlexp train -m OVERRIDES` into DIR (given explicitly, so the script knows where to
# look); the exit code is left in $code. Stops the script when nothing ran or the sweep was interrupted.
sweep() {
    local dir=$1
    shift
    code=0
    "${dlexp[@]}" train -m hydra.sweep.dir="$dir" "$@" || code=$?
    case $code in 0|1|3) ;; *) exit "$code" ;; esac   # 2: nothing ran (bad overrides); 130/143: interrupted
}
