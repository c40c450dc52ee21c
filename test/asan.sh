#!/usr/bin/env bash
# The engine's, the proxy's and the unix sockets' tests once more, with the addon built under
# AddressSanitizer (use after free, overflows, double closes show up as a report and a failed
# run). Slower than `npm test`, so not part of it: run it after changing native/. Rebuilds
# the normal addon at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
asan=$(gcc -print-file-name=libasan.so)
trap 'npx node-gyp rebuild --directory native >/dev/null 2>&1' EXIT
CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g" LDFLAGS="-fsanitize=address" \
  npx node-gyp rebuild --directory native >/dev/null
npm run build:ts >/dev/null
# Node itself is not built for ASan: its own allocations at exit are not ours to report.
LD_PRELOAD="$asan" ASAN_OPTIONS="detect_leaks=0:abort_on_error=1" node test/run.js integration/proxy/engine unit/proxy/engine integration/proxy/ranges integration/proxy/wakeondata unit/peer/enginechannel integration/peer/channel integration/proxy/namespaces integration/proxy/sockets unit/proxy/balance unit/proxy/proxyproto integration/proxy/transparent unit/proxy/settail e2e/trust.test e2e/trust-data unit/tunnel/sockbuf
