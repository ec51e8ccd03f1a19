# The two commands a user needs:
#   make run    set up (installs missing Debian packages), build, start the main job
#   make test   set up, build and run the whole test suite
BUILD_DIR ?= build
BUILD_TYPE ?= Release
DMS_CUDA ?= AUTO
JOBS ?= $(shell nproc)
MODEL ?=

.PHONY: all setup configure build run test clean

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

clean:
	rm -rf $(BUILD_DIR)
