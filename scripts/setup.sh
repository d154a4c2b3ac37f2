#!/usr/bin/env bash
# Installs what quarrel needs to build and test:
#  - Debian packages (compiler, CMake, PCRE2, utf8proc, Python): installed with apt-get
#    when run as root, otherwise the exact apt-get line is printed and we stop.
#  - Python packages for the reference tests (gguf, numpy, jinja2, openai): pip --target into
#    .cache/pydeps, so nothing outside the project is touched.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(build-essential cmake pkg-config clang libclang-rt-14-dev libpcre2-dev libutf8proc-dev libcjson-dev libmicrohttpd-dev python3 python3-pip)
PY_PACKAGES=(gguf==0.19.0 numpy jinja2 openai)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]]; then
        echo "setup: installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "setup: missing system packages; run:" >&2
        echo "  sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

stamp=.cache/pydeps/.installed
want="${PY_PACKAGES[*]}"
if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
    echo "setup: installing Python test packages into .cache/pydeps: $want" >&2
    mkdir -p .cache/pydeps
    python3 -m pip install -q --disable-pip-version-check --upgrade --target .cache/pydeps "${PY_PACKAGES[@]}" >&2
    echo "$want" >"$stamp"
fi
