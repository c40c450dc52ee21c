import assert from 'node:assert/strict';
import { it } from 'node:test';
import { run } from '../../../src/common/exec';

it('names the Debian package of a missing tool, and says what a failing one said', async () => {
  const path = process.env.PATH;
  process.env.PATH = '/nonexistent';
  try {
    await assert.rejects(run('wg', ['--version']), {
      code: 'TOOL_MISSING',
      message:
        'wg is not installed: install the Debian package wireguard-tools (apt-get install wireguard-tools)',
    });
    await assert.rejects(run('wireguard-go', []), /Debian package wireguard-go/);
  } finally {
    process.env.PATH = path;
  }
  await assert.rejects(run('ip', ['link', 'show', 'no-such-device-here']), {
    code: 'TOOL_FAILED',
    message: /ip link show no-such-device-here failed: .*does not exist/,
  });
});

it("says a failing tool's error from stdout when its stderr holds only a drawn banner", async () => {
  // as wireguard-go does when its socket is taken: the banner on stderr, the error on stdout
  const script =
    'printf "┌──┐\\n│ no need │\\n└──┘\\n" >&2; echo "ERROR: (wh0) UAPI listen error: unix socket in use"; exit 1';
  await assert.rejects(run('bash', ['-c', script]), {
    code: 'TOOL_FAILED',
    message: /failed: ERROR: \(wh0\) UAPI listen error: unix socket in use$/,
  });
});
