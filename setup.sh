#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine for this project (idempotent, quick when nothing changed):
#   - system packages: MariaDB server (run as a private child process, never as the system service),
#     python3-venv, wrk + nginx-light (loadgen benchmark), openssh-server (SSH-target tests)
#   - .venv with the pinned Python packages (requirements-dev.txt)
#   - .venv-validate with the offline cloud validators (checkov, kubernetes-validate)
# The pinned Go binaries are built by `inv bootstrap` (needs Go; the version is checked there).
set -euo pipefail
cd "$(dirname "$0")"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

packages=(mariadb-server mariadb-client python3-venv wrk nginx-light openssh-server openssh-client)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "error: not a Debian/Ubuntu machine: install ${missing[*]} with your package manager" >&2
    exit 2
  fi
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v go >/dev/null; then
  echo "error: Go is not installed: install Go 1.25 or newer (https://go.dev/dl/), then re-run" >&2
  exit 2
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
.venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt

if [ ! -x .venv-validate/bin/checkov ] || [ tools/validate/requirements.txt -nt .venv-validate/.installed ]; then
  [ -x .venv-validate/bin/python ] || "$PY" -m venv .venv-validate
  .venv-validate/bin/pip install -q --disable-pip-version-check -r tools/validate/requirements.txt
  touch .venv-validate/.installed
fi
# actionlint (pinned Go tool module) for the offline workflow checks.
if [ ! -x bin/actionlint ] || [ tools/actionlint/go.mod -nt bin/actionlint ]; then
  go -C tools/actionlint build -o "$PWD/bin/" tool
fi
echo "setup: ok (.venv, .venv-validate, bin/actionlint); next: .venv/bin/inv bootstrap"
