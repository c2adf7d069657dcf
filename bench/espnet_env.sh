#!/usr/bin/env bash
# Creates bench/.venv-espnet (gitignored) with ESPnet for bench/compare_espnet.py.
# ESPnet needs torchaudio, and torchaudio's last release pairs with torch 2.9,
# so this venv has its own torch, apart from dualasr's .venv. Several GB of
# downloads from PyPI (the CUDA build of torch on x86_64).
#
#   bash bench/espnet_env.sh            # then: .venv/bin/python bench/compare_espnet.py
#   PYTHON=python3.11 bash bench/espnet_env.sh
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv-espnet}  # relative to bench/
ESPNET=${ESPNET:-espnet==202511}

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/pip"
"$PIP" install -q --upgrade pip
# torchvision first, then torchaudio, both at torch 2.9.1: this order is the
# one that resolves here without pip replacing torch.
"$PIP" install torch==2.9.1 torchvision==0.24.1
"$PIP" install torch==2.9.1 'torchaudio==2.9.*'
# Pin torch while ESPnet's own requirements resolve, so none of them moves it.
pins=$(mktemp)
reqs=$(mktemp)
trap 'rm -f "$pins" "$reqs"' EXIT
"$VENV/bin/python" - >"$pins" <<'EOF'
from importlib.metadata import version
for name in ("torch", "torchvision", "torchaudio"):
    print(f"{name}=={version(name)}")
EOF
# ESPnet's requirement ci_sdr (speech enhancement only) names a git URL in an
# extra, which pip refuses from PyPI ("cannot declare direct URL
# dependencies"): install ESPnet without its requirements, then every
# requirement but ci_sdr.
"$PIP" install --no-deps "$ESPNET" packaging
"$VENV/bin/python" - >"$reqs" <<'EOF'
from importlib.metadata import requires
from packaging.requirements import Requirement
for line in requires("espnet"):
    req = Requirement(line)
    if req.marker is None and req.name.lower().replace("_", "-") != "ci-sdr":
        print(req)
EOF
"$PIP" install -c "$pins" -r "$reqs"
"$VENV/bin/python" -c "import espnet, espnet2.st.espnet_model, torch; print('espnet', espnet.__version__, 'torch', torch.__version__)"
touch "$VENV/.installed"
