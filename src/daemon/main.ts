/**
 * wormholed: the composition root. Parses flags, opens the state directory and the key,
 * starts the API listeners, and on SIGTERM / SIGINT closes everything and exits 0.
 */
import { UsageError, WormholeError, errorMessage } from '../common/errors';
import { DEFAULT_KEY_FILE, ensureKeyFile, readKey } from '../common/key';
import { type Logger, createLogger } from '../common/log';
import { Docker } from '../docker';
import { Engine } from '../proxy/engine';
import { SegmentManager } from '../segment/manager';
import { TunnelService } from '../tunnel';
import { makeHandlers } from './handlers';
import { DAEMON_USAGE, type DaemonOptions, parseDaemonOptions } from './options';
import { Peers } from './peers';
import { ApiServer } from './server';
import { StateDir } from './state';

/** How long shutdown may take before the process exits anyway. */
const SHUTDOWN_LIMIT_MS = 1800;

/** Run the daemon; resolves when it has started. */
export async function main(argv: string[]): Promise<void> {
  let opts: DaemonOptions;
  try {
    opts = parseDaemonOptions(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`wormholed: ${err.message}\n\n${DAEMON_USAGE}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (opts.help) {
    process.stdout.write(`${DAEMON_USAGE}\n`);
    return;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('wormholed: must run as root (it enters network namespaces): sudo bin/wormholed\n');
    process.exit(1);
  }
  const log = createLogger('wormholed');
  let state: StateDir | undefined;
  try {
    if (opts.keyFile === DEFAULT_KEY_FILE && ensureKeyFile(opts.keyFile)) {
      log.warn({ file: opts.keyFile }, 'created a new key file: copy it to every peer');
    }
    const key = readKey(opts.keyFile);
    state = new StateDir(opts.stateDir);
    const containers = new Docker(log, state.ownerId);
    // Containers a crashed run of this daemon left behind (same state dir, same owner id).
    await containers.removeOwned().then(
      (n) => n > 0 && log.warn({ removed: n }, 'removed containers left by an earlier run'),
      (err: unknown) =>
        log.info(
          { err: errorMessage(err) },
          'docker not reachable at start; checked again when a segment needs it',
        ),
    );
    const peers = new Peers(key);
    const tunnels = new TunnelService(
      {
        stateFile: state.file('tunnels.json'),
        keyDir: state.file('tunnel-keys'),
        cidr: opts.overlayCidr,
        ports: opts.udpPorts,
        internalIp: opts.internalIp,
        externalIp: opts.externalIp,
        engine: opts.tunnelEngine,
      },
      peers,
      log,
    );
    await tunnels.start();
    const engine = startEngine(log);
    const manager = new SegmentManager({
      log,
      containers,
      peers,
      tunnels,
      dialTimeoutMs: opts.dialTimeoutMs,
      udpIdleMs: opts.udpIdleMs,
      engine,
      maxConnections: 65536,
    });
    const server = new ApiServer(
      makeHandlers({ manager, peers, tunnels }),
      (id, s, ready) => manager.attach(id, s, ready),
      key,
      log,
    );
    for (const addr of opts.listen) await server.listen(addr);

    const openState = state;
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'stopping');
      setTimeout(() => {
        log.error('shutdown took too long, exiting');
        openState.release();
        process.exit(0);
      }, SHUTDOWN_LIMIT_MS).unref();
      void (async () => {
        await server.close().catch(() => undefined);
        await manager
          .closeAll()
          .catch((err: unknown) => log.error({ err: errorMessage(err) }, 'segments not all closed'));
        await containers.removeOwned().catch(() => undefined);
        engine?.stop();
        openState.release();
        log.info('stopped');
        process.exit(0);
      })();
    };
    // One failing connection or library callback must not take every segment down with it.
    process.on('uncaughtException', (err) =>
      log.fatal({ err: err.stack ?? String(err) }, 'unexpected error, going on'),
    );
    process.on('unhandledRejection', (err) =>
      log.error({ err: err instanceof Error ? err.stack : String(err) }, 'unhandled rejection, going on'),
    );
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    log.info({ stateDir: opts.stateDir }, 'wormholed started');
  } catch (err) {
    state?.release();
    const msg = err instanceof WormholeError ? err.message : `unexpected error: ${errorMessage(err)}`;
    if (!(err instanceof WormholeError))
      log.error({ err: err instanceof Error ? err.stack : err }, 'start failed');
    process.stderr.write(`wormholed: ${msg}\n`);
    process.exit(1);
  }
}

/**
 * The splice engine moves the bytes; if it cannot start (or WORMHOLE_ENGINE=off), the daemon
 * says so once and JavaScript moves them: a slower daemon, never a broken one.
 */
function startEngine(log: Logger): Engine | null {
  if (process.env.WORMHOLE_ENGINE === 'off') {
    log.warn('splice engine off (WORMHOLE_ENGINE=off): JavaScript moves the bytes');
    return null;
  }
  try {
    const engine = new Engine((err) =>
      log.error({ err }, 'the engine could not leave a namespace: new connections go through JavaScript'),
    );
    log.info('splice engine started');
    return engine;
  } catch (err) {
    log.warn({ err: errorMessage(err) }, 'splice engine not available: JavaScript moves the bytes (slower)');
    return null;
  }
}
