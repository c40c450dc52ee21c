#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with node's own test runner, one
// file at a time: integration tests share the machine's namespaces, Docker and ports.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..', 'dist', 'test');
const only = process.argv.slice(2);
const files = [];
(function walk(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) walk(full);
    else if (entry.name.endsWith('.test.js')) files.push(full);
  }
})(root);
files.sort();
const selected = only.length ? files.filter((f) => only.some((o) => f.includes(o))) : files;
if (selected.length === 0) {
  console.error('no test files found: run "npm run build:ts" first');
  process.exit(1);
}

// Docker tests need an engine and their images: start dockerd if none runs (and stop it
// again at the end), and build the images once, before any test's clock starts.
async function main() {
  // (by path: test/integration/docker/*, test/integration/seed/*, test/e2e/readme)
  const needsDocker = selected.some((f) => /docker|seed|readme/.test(path.relative(root, f)));
  const docker = needsDocker ? require('../dist/test/helpers/docker.js') : undefined;
  let status = 1;
  try {
    if (docker) {
      await docker.ensureDockerd();
      const started = Date.now();
      await docker.ensureTestImages();
      console.log(`# test images ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
    const args = ['--test', '--test-concurrency=1', '--test-timeout=180000', ...selected];
    status = spawnSync(process.execPath, args, { stdio: 'inherit' }).status ?? 1;
  } finally {
    // a dockerd this run started is stopped again, even when the image build failed
    if (docker) await docker.stopDockerdIfStarted();
  }
  process.exit(status);
}
main().catch((err) => {
  console.error(err);
  process.exit(1);
});
