import { execFile } from 'node:child_process';
import { WormholeError } from './errors';

/** Which Debian package provides each external tool, for "not installed" messages. */
const PACKAGE_OF: Record<string, string> = {
  ip: 'iproute2',
  wg: 'wireguard-tools',
  'wireguard-go': 'wireguard-go',
  iptables: 'iptables',
  ip6tables: 'iptables',
  nsenter: 'util-linux',
};

/** The result of a finished command. */
export interface ExecResult {
  stdout: string;
  stderr: string;
}

/**
 * Run a program with an argv array: never through a shell. Rejects with a WormholeError
 * whose code is `TOOL_MISSING` (naming the Debian package) or `TOOL_FAILED` (with the tool's
 * own stderr).
 */
export function run(
  file: string,
  args: readonly string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { timeout: options.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024, shell: false },
      (err, stdout, stderr) => {
        if (!err) {
          resolve({ stdout, stderr });
          return;
        }
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          const pkg = PACKAGE_OF[file];
          reject(
            new WormholeError(
              'TOOL_MISSING',
              `${file} is not installed${pkg ? `: install the Debian package ${pkg} (apt-get install ${pkg})` : ''}`,
            ),
          );
          return;
        }
        // the last lines that say something: wireguard-go's stderr is a drawn banner alone,
        // its error on stdout ("UAPI listen error: unix socket in use")
        const saying = (text: string): string[] =>
          text
            .split('\n')
            .map((l) => l.trim())
            .filter((l) => l !== '' && !/^[│┌└─]/.test(l));
        const detail = ([stderr, stdout, err.message].map(saying).find((l) => l.length > 0) ?? [])
          .slice(-3)
          .join('; ');
        reject(new WormholeError('TOOL_FAILED', `${file} ${args.join(' ')} failed: ${detail}`));
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}
