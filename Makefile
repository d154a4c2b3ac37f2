# Thin wrapper over CMake so the README's commands stay short.
#   make run    install dependencies and the default model, build, generate a completion
#               with it (PROMPT="..." N=48 to change the prompt and length)
#   make test   install dependencies, build, run every test (ctest)
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all deps build run model test-data test test-slow test-asan fuzz clean

all: build

deps:
	@bash scripts/setup.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

model:
	@bash scripts/default-model.sh >/dev/null

PROMPT ?= The three most important things to know about the ocean are
N ?= 48
run: build
	@model=$$(bash scripts/default-model.sh) && ./$(BUILD)/bin/quarrel run -m "$$model" -p "$(PROMPT)" -n $(N) && echo

test-data:
	@bash scripts/test-data.sh

test: build model test-data
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# Only the long end-to-end checks (Gemma 3 perplexity on GPL-3, ~14 min on 2 cores).
test-slow: build model test-data
	@cd $(BUILD) && ctest --output-on-failure -L slow

# The C tests under AddressSanitizer + UndefinedBehaviorSanitizer (no CUDA, no Python).
test-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DQUARREL_SANITIZE=ON -DQUARREL_CUDA=OFF >/dev/null
	@cmake --build build-asan -j$(JOBS)
	@cd build-asan && ctest --output-on-failure -j$(JOBS) -L unit -LE slow

# libFuzzer targets, each run for FUZZ_SECONDS on its seed corpus.
FUZZ_SECONDS ?= 60
fuzz: deps
	@cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DQUARREL_FUZZ=ON -DQUARREL_CUDA=OFF >/dev/null
	@cmake --build build-fuzz -j$(JOBS)
	@bash fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) build-asan build-fuzz
