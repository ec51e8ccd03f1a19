# The two commands a user needs:
#   make run    set up (installs missing Debian packages), build, start the main job
#   make test   set up, build and run the whole test suite
BUILD_DIR ?= build
BUILD_TYPE ?= Release
DMS_CUDA ?= AUTO
JOBS ?= $(shell nproc)
MODEL ?=

.PHONY: all setup configure build run test test-sanitizers fuzz ci clean

all: build

setup:
	@scripts/setup.sh

configure: setup
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DDMS_CUDA=$(DMS_CUDA) >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

run: build
	@MODEL="$(MODEL)" BUILD_DIR="$(BUILD_DIR)" scripts/run.sh

test: build
	@ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

# ASan+UBSan and TSan builds of the CPU test suite (build-asan, build-tsan).
test-sanitizers: setup
	@scripts/sanitize.sh asan
	@scripts/sanitize.sh tsan

# libFuzzer targets for a bounded time, then every saved regression input.
fuzz: setup
	@scripts/fuzz.sh

# What CI runs: the README's test command, then sanitizers and fuzzing.
ci: test test-sanitizers fuzz

clean:
	rm -rf $(BUILD_DIR)
