#!/usr/bin/env bash
# Debug build of the C++ core with AddressSanitizer + UndefinedBehaviorSanitizer, then the
# test suite against it. Uses its own virtual environment (.venv-asan) so the release
# install is untouched. Any sanitizer report fails the run (halt_on_error). CUDA is left
# out: its kernels cannot run without a GPU, and the host code they share with the CPU
# path (cpp/affcore/render/raster_core.hpp) is exercised through the CPU rasterizer.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-asan
. .venv-asan/bin/activate
python -m pip install -q --upgrade pip
AFFCORE_SANITIZE=ON AFFCORE_CUDA=OFF python -m pip install -q ".[dev]" \
  -Ccmake.build-type=Debug -Cbuild-dir=build/asan
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
python -c "import affcore; assert affcore.build_info()['sanitizers'], 'not a sanitizer build'"
python -m pytest tests -x -q -p no:cacheprovider "$@"
