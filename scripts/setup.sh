#!/usr/bin/env bash
# Installs what is missing to build and test dms-serve on Debian 12, and
# fetches the real Qwen3 tokenizer for the tests. Idempotent: a second run
# installs nothing and downloads nothing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libspdlog-dev prometheus-cpp-dev libgtest-dev libgmock-dev
  nlohmann-json3-dev libpcre2-dev libutf8proc-dev libcli11-dev libssl-dev openssl
  prometheus curl python3 yamllint python3-yaml ccache
  npm
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    # npm may come from elsewhere (nodesource, nvm): accept a working npm.
    if [[ "$p" == npm ]] && command -v npm >/dev/null 2>&1; then continue; fi
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all Debian packages present"
fi

if ! command -v nvcc >/dev/null 2>&1 && [[ ! -x /usr/local/cuda/bin/nvcc ]]; then
  echo "setup: no CUDA toolkit found; the CPU-only product will be built"
fi

"$(dirname "$0")/fetch_tokenizer.sh"
