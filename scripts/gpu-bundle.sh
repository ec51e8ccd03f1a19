# shellcheck shell=bash
# Sourced by the scripts that run on the GPU machine (gpu.sh run,
# gpu-bench-env.sh, gpu-kernel-ab.sh): the bundle `gpu.sh build` makes is
# .carry/gpu, ~56 MB, and also .carry/gpu.tgz, ~25 MB, which is what fits
# under the device's 64 MiB carry limit next to anything else. Carry either.
# The archive is unpacked when there is no bundle, or when the bundle came
# from a different archive (a warm machine keeps the last call's unpacked
# bundle: a stamp in it names its archive's checksum). A bundle without a
# stamp was carried as it is, and an archive left over from an earlier call
# does not replace it.
# Needs: root (the repository root). Sets: bundle.
bundle="$root/.carry/gpu"
if [ -f "$bundle.tgz" ]; then
  sum="$(cksum < "$bundle.tgz")"
  if [ ! -d "$bundle/bin" ] ||
     { [ -f "$bundle/.from-archive" ] && [ "$(cat "$bundle/.from-archive")" != "$sum" ]; }; then
    rm -rf "$bundle"
    tar xzf "$bundle.tgz" -C "$(dirname "$bundle")"
    echo "$sum" > "$bundle/.from-archive"
  fi
  unset sum
fi
