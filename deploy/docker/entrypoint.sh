#!/usr/bin/env bash
# Container entry point: every DMS_SERVER_<FLAG> environment variable becomes
# the dms-server flag --<flag> (lower case, '_' -> '-'), e.g.
#   DMS_SERVER_KV_MEMORY=0.9   ->  --kv-memory=0.9
# so compose files and Kubernetes ConfigMaps can set any flag without a
# command line. Arguments given to the container come after and win: a flag
# present in the arguments is not taken from the environment (CLI11 refuses a
# flag given twice). An empty variable is skipped, so an override can unset.
set -euo pipefail

args=("$@")
given() {  # is --$1 among the container's arguments?
  local a
  for a in "${args[@]+"${args[@]}"}"; do
    [[ "$a" == "--$1" || "$a" == "--$1="* ]] && return 0
  done
  return 1
}

flags=()
for var in $(compgen -v DMS_SERVER_ | sort); do
  value="${!var}"
  [[ -z "$value" ]] && continue
  name="${var#DMS_SERVER_}"
  name="${name,,}"
  name="${name//_/-}"
  given "$name" && continue
  flags+=("--$name=$value")
done

exec dms-server "${flags[@]+"${flags[@]}"}" "$@"
