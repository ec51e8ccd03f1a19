#!/usr/bin/env bash
# Copies what the runtime image needs out of a build tree:
#   BUILD/bin/{dms-server,dms,dms-engine}  -> DEST/bin
#   BUILD/lib/libdms_cuda.so (if built)     -> DEST/lib
#   every shared library they load          -> DEST/lib
# except the C runtime every base image has (glibc, libstdc++, libgcc_s) and
# the NVIDIA driver libraries the container runtime mounts from the host.
# Fails when a library cannot be found, so a broken image never gets built.
#
# usage: deploy/docker/bundle.sh BUILD_DIR DEST_DIR
set -euo pipefail
if [[ $# -ne 2 ]]; then
  echo "usage: $0 BUILD_DIR DEST_DIR" >&2
  exit 2
fi
build="$1"
dest="$2"
binaries=(dms-server dms dms-engine)
mkdir -p "$dest/bin" "$dest/lib"

objects=()
for b in "${binaries[@]}"; do
  if [[ ! -x "$build/bin/$b" ]]; then
    echo "bundle: $build/bin/$b: missing (build the dms-server, dms and dms-engine targets)" >&2
    exit 1
  fi
  cp "$build/bin/$b" "$dest/bin/"
  objects+=("$build/bin/$b")
done
if [[ -f "$build/lib/libdms_cuda.so" ]]; then
  cp "$build/lib/libdms_cuda.so" "$dest/lib/"
  objects+=("$build/lib/libdms_cuda.so")
fi

# Provided by the runtime base image or by the host's driver.
skip='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libresolv|libutil|libstdc\+\+|libgcc_s|libcuda|libnvidia-)[.-]'
for obj in "${objects[@]}"; do
  while read -r line; do
    # "libfoo.so.1 => /path/libfoo.so.1 (0x...)" or "libfoo.so.1 => not found"
    lib="${line%% *}"
    [[ "$lib" =~ $skip ]] && continue
    path="$(sed -n 's/^[^ ]* => \([^ ]*\) (0x.*$/\1/p' <<<"$line")"
    if [[ "$line" == *"=> not found"* || -z "$path" ]]; then
      [[ "$line" == *"=>"* ]] || continue  # the loader or vdso line
      echo "bundle: $obj needs $lib, which is not found" >&2
      exit 1
    fi
    cp -L "$path" "$dest/lib/$lib"
  done < <(ldd "$obj")
done
echo "bundle: $(ls "$dest/bin" | wc -l) binaries, $(ls "$dest/lib" | wc -l) libraries in $dest"
