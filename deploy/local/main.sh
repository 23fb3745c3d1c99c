#!/usr/bin/env bash
# baoxue's main job on a developer machine: infrastructure up, build, migrate, topics, then a simulated
# county's term through the whole pipeline with its summary (deploy/local/demo.sh).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"

bash deploy/local/bx-infra up
# shellcheck disable=SC1091
source "${BX_RUN_DIR:-$REPO/.run}/env"

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build

build/tools/bxctl/bxctl migrate
build/tools/bxctl/bxctl topics create

bash deploy/local/demo.sh
