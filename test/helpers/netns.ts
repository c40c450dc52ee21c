/**
 * Network namespaces for tests: made by the test, removed after it even when it fails.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/** Run a command (argv, no shell) and return its stdout. */
export function sh(file: string, ...args: string[]): string {
  return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Something that runs clean-ups when a test or suite ends (a TestContext, or `{ after }`). */
export interface Cleanup {
  after(fn: () => unknown): void;
}

/**
 * Delete a namespace and end what still runs in it first: a process left inside (such as a
 * wireguard-go that a test did not tear down) would keep the namespace, and its interface
 * names, alive after `ip netns delete`.
 */
export function removeNetns(name: string): void {
  try {
    for (const pid of sh('ip', 'netns', 'pids', name).split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone already
      }
    }
    sh('ip', 'netns', 'delete', name);
  } catch {
    // already gone
  }
}

/** A fresh named namespace with loopback up, deleted when the test (or suite) ends. */
export function withNetns(t: Cleanup, prefix = 'wht', exactName?: string): string {
  const name = exactName ?? `${prefix}-${randomBytes(3).toString('hex')}`;
  sh('ip', 'netns', 'add', name);
  sh('ip', '-n', name, 'link', 'set', 'lo', 'up');
  t.after(() => removeNetns(name));
  return name;
}

/**
 * Two namespaces joined by a veth pair, as two test hosts: `a` at 10.77.N.1, `b` at
 * 10.77.N.2 (N picked at random so that tests do not collide).
 */
export function withHostPair(t: Cleanup): { a: string; b: string; ipA: string; ipB: string; vethA: string } {
  const a = withNetns(t, 'wha');
  const b = withNetns(t, 'whb');
  const n = 1 + (randomBytes(1)[0] % 250);
  const ipA = `10.77.${n}.1`;
  const ipB = `10.77.${n}.2`;
  const vethA = `veth${a.slice(-6)}`;
  const vethB = `veth${b.slice(-6)}`;
  sh('ip', 'link', 'add', vethA, 'netns', a, 'type', 'veth', 'peer', 'name', vethB, 'netns', b);
  sh('ip', '-n', a, 'addr', 'add', `${ipA}/24`, 'dev', vethA);
  sh('ip', '-n', b, 'addr', 'add', `${ipB}/24`, 'dev', vethB);
  sh('ip', '-n', a, 'link', 'set', vethA, 'up');
  sh('ip', '-n', b, 'link', 'set', vethB, 'up');
  return { a, b, ipA, ipB, vethA };
}

/**
 * A Cleanup for a whole describe() block: call it in the block's body (not in a hook); what
 * is registered on it runs, last first, after the block's tests.
 */
export function suiteCleanup(after: (fn: () => unknown) => void): Cleanup {
  const fns: (() => unknown)[] = [];
  after(async () => {
    for (const fn of fns.reverse()) await fn();
  });
  return { after: (fn) => fns.push(fn) };
}
