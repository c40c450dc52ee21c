#!/usr/bin/env bash
# One setup command: the Debian packages wormhole and its tests use, the npm dependencies,
# and the build (the netns addon and the TypeScript). Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")"

# Node.js 20 or later runs wormhole and its build. It is not installed here: Debian 12's own
# nodejs is 18, so it comes from elsewhere (NodeSource's node_20.x repository, npm included,
# or Node's own Linux binaries).
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ] || ! command -v npm >/dev/null; then
  echo "setup.sh: wormhole needs Node.js 20 or later with npm (found: node $(node --version 2>/dev/null || echo none)," \
    "npm $(npm --version 2>/dev/null || echo none)): install them first; Debian 12's own nodejs is 18" >&2
  exit 1
fi

# wireguard-go from bookworm-backports: bookworm's own (0.0.20220316) has no TUN or UDP
# offloads and carries about a tenth of what ssh does; 0.0.20231211 has both. Only that
# package comes from backports (a pin); everything else stays bookworm's. The backports
# source uses the mirror the bookworm source already names.
if ! grep -rqs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
  if [ -z "$mirror" ]; then
    echo "setup.sh: no Debian bookworm source in /etc/apt to take the mirror from: add bookworm-backports yourself" >&2
    exit 1
  fi
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "${mirror%% *}" > /etc/apt/sources.list.d/wormhole-backports.sources
fi
printf '%s\n' "# wormhole's setup.sh: only wireguard-go comes from bookworm-backports" \
  'Package: wireguard-go' 'Pin: release n=bookworm-backports' 'Pin-Priority: 500' \
  > /etc/apt/preferences.d/wormhole-wireguard-go

packages=(
  iproute2          # ip netns, veth, ip -j
  docker.io         # dockerd + docker-proxy (tests start dockerd themselves)
  docker-compose    # Compose files whose wormhole.NAME labels declare segments (test/integration/docker/labels)
  podman            # rootful Podman's Docker-compatible API (test/integration/podman starts its own service)
  wireguard-go      # userspace WireGuard where the kernel has none (bookworm-backports')
  wireguard-tools   # wg
  # IPsec where the kernel has no ESP: charon with its userspace ESP (kernel-libipsec, in
  # libcharon-extra-plugins), AES-GCM (libstrongswan-standard-plugins), swanctl to look at
  # it by hand, bwrap to give each daemon's charon a /run of its own (its pid file is fixed)
  strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins bubblewrap
  iptables
  socat iperf3 tcpdump openssh-client openssh-server   # tests and bench peers
  tmux              # a real terminal for 'wormhole top' (test/e2e/top)
  chromium          # a real browser, headless, for the web view's test (test/e2e/ui)
  curl              # the README's examples
  passt             # pasta: the bench's peer across namespaces (rootless Podman's port forwarder)
  mariadb-client    # the seed's 'mysql -u root -h 127.0.0.1'
  debootstrap busybox-static   # test images are built locally
  python3 make g++ gcc libc6-dev   # node-gyp, and the test echo server (static)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# bookworm's wireguard-go is there but not backports' (its version has "bpo"): replace it
if dpkg-query -W -f='${Status}' wireguard-go 2>/dev/null | grep -q "install ok installed" &&
  ! dpkg-query -W -f='${Version}' wireguard-go | grep -q bpo; then
  missing+=(wireguard-go)
fi
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# strongswan-charon brings strongswan-starter, which would start a charon of the host's at
# boot (on UDP 500 and 4500, beside the daemons' own): wormhole runs its own, so it is off.
if [ -e /lib/systemd/system/strongswan-starter.service ]; then
  if [ -d /run/systemd/system ]; then
    systemctl disable --now strongswan-starter.service >/dev/null 2>&1 || true
  else
    systemctl disable strongswan-starter.service >/dev/null 2>&1 || true
  fi
fi
if [ -e /etc/init.d/ipsec ] && command -v update-rc.d >/dev/null; then
  update-rc.d ipsec disable >/dev/null 2>&1 || true
fi

npm ci --no-audit --no-fund
npm run build
echo "setup done: start the daemon with 'bin/wormholed', run the tests with 'npm test'"
