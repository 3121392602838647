#!/usr/bin/env bash
# Moved to bench/speed/gpu.sh: an alias of the old command, for one release.
exec bash "$(dirname "$0")/speed/gpu.sh" "$@"
