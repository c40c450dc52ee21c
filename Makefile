# The seed's build commands, kept: make (setup and build), make test-unit, make test-functional.
.PHONY: all build test test-unit test-functional bench

all: build

build:
	./setup.sh

test:
	npm test

test-unit:
	npm run build:ts && node test/run.js unit

test-functional:
	npm run build:ts && node test/run.js integration e2e

bench:
	npm run bench
