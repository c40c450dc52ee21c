#!/usr/bin/env bash
# One setup command: the Debian packages wormhole and its tests use, the npm dependencies,
# and the build (the netns addon and the TypeScript). Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")"

packages=(
  iproute2          # ip netns, veth, ip -j
  docker.io         # dockerd + docker-proxy (tests start dockerd themselves)
  wireguard-go      # userspace WireGuard where the kernel has none
  wireguard-tools   # wg
  iptables
  socat iperf3 tcpdump openssh-client openssh-server   # tests and bench peers
  tmux              # a real terminal for 'wormhole top' (test/e2e/top)
  passt             # pasta: the bench's peer across namespaces (rootless Podman's port forwarder)
  mariadb-client    # the seed's 'mysql -u root -h 127.0.0.1'
  debootstrap busybox-static   # test images are built locally
  python3 make g++ gcc libc6-dev   # node-gyp, and the test echo server (static)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

npm ci --no-audit --no-fund
npm run build
echo "setup done: start the daemon with 'bin/wormholed', run the tests with 'npm test'"
