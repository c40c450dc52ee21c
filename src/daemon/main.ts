/**
 * wormholed: the composition root. Parses flags, opens the state directory and the key
 * (or takes over from the daemon running on it), starts the API listeners, builds again the
 * segments the state directory keeps, and on SIGTERM / SIGINT closes everything and exits 0.
 */
import * as os from 'node:os';
import { formatDaemonAddress } from '../common/address';
import { UsageError, WormholeError, errorMessage } from '../common/errors';
import { DEFAULT_KEY_FILE, ensureKeyFile, readKey } from '../common/key';
import { withDeadline } from '../common/deadline';
import { resolveDirs } from '../common/hostpath';
import { packageVersion } from '../common/version';
import { PROTOCOL_VERSION } from '../api/protocol';
import { type Logger, createLogger } from '../common/log';
import { Docker, resolveAllowedDirs } from '../docker';
import { Engine } from '../proxy/engine';
import { SegmentManager } from '../segment/manager';
import { SegmentStore } from '../store';
import { TunnelService } from '../tunnel';
import { type Services, makeAttach, makeHandlers, segmentInfos } from './handlers';
import { LabelSegments } from '../segment/labels';
import { sdNotify } from './notify';
import { DAEMON_USAGE, type DaemonOptions, parseDaemonOptions } from './options';
import type { MetricsServer } from './metrics';
import { Peers } from '../peer';
import { ApiServer } from './server';
import { KeyRing, loadKeysFile } from '../trust/keys';
import type { UiServer } from '../ui/server';
import { uiToken } from '../ui/token';
import { MemoryGiveBack } from './memory';
import { wireSignals } from './signals';
import { StateDir } from './state';
import { type Handed, TAKEOVER_SOCKET, TakeoverPoint, takeOver } from './takeover';

/**
 * At stop, how long segments (connections, children local and remote) may take to close
 * before the daemon's containers are removed regardless: a stuck peer must not leave them.
 */
const SEGMENTS_LIMIT_MS = 1500;
/** At stop, how long the Docker engine may take to remove the daemon's containers. */
const DOCKER_LIMIT_MS = 10_000;
/** At start, how long the warm-up channel to itself may hold up the daemon's READY=1. */
const WARMUP_LIMIT_MS = 1000;

/** Run the daemon; resolves when it has started. */
export async function main(argv: string[]): Promise<void> {
  let opts: DaemonOptions;
  try {
    opts = parseDaemonOptions(argv);
  } catch (err) {
    // Bad input to the daemon: one line, exit 1 (a daemon's caller is a unit file or a
    // script, which reads the first line of stderr; the usage is one --help away).
    if (err instanceof WormholeError) {
      const hint = err instanceof UsageError ? ' (wormholed --help lists the flags)' : '';
      process.stderr.write(`wormholed: ${err.message}${hint}\n`);
      process.exit(1);
    }
    throw err;
  }
  if (opts.help) {
    process.stdout.write(`${DAEMON_USAGE}\n`);
    return;
  }
  if (opts.version) {
    process.stdout.write(`wormholed ${packageVersion()} (protocol ${PROTOCOL_VERSION})\n`);
    return;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('wormholed: must run as root (it enters network namespaces): sudo bin/wormholed\n');
    process.exit(1);
  }
  const log = createLogger('wormholed', opts.logLevel);
  let state: StateDir | undefined;
  let handed: Handed | undefined;
  // (stopped before a failed start exits: a process that ends with the engine's thread
  // running can die of SIGABRT instead of exiting 1)
  let engine: Engine | null = null;
  try {
    if (opts.keyFile === DEFAULT_KEY_FILE && ensureKeyFile(opts.keyFile)) {
      log.warn({ file: opts.keyFile }, 'created a new key file: copy it to every peer');
    }
    const key = readKey(opts.keyFile);
    // a bad keys file stops the start here, with its line: nothing is made yet
    const keys = new KeyRing(key, opts.keysFile ? loadKeysFile(opts.keysFile, key) : []);
    const allowBind = resolveAllowedDirs(opts.allowBind);
    const allowUnix = resolveDirs('--allow-unix', opts.allowUnix);
    state = new StateDir(opts.stateDir, opts.takeover);
    // Before anything else: the sockets of the daemon this one replaces (bounded wait).
    if (opts.takeover) handed = takeOver(state.file(TAKEOVER_SOCKET));
    const containers = new Docker(log, state.ownerId, { allowBind });
    // What the predecessor ran is this daemon's now: found by its labels, not run twice.
    containers.adopt = handed !== undefined;
    // Containers a crashed run of this daemon left behind (same state dir, same owner id).
    // A clean stop removed its own, so the engine is only asked after one that was not.
    const openedState = state;
    if (state.uncleanStop)
      await containers.removeOwned().then(
        (n) => {
          openedState.cleanupPending(false);
          if (n > 0) log.warn({ removed: n }, 'removed containers left by an earlier run');
        },
        (err: unknown) => {
          openedState.cleanupPending(true);
          log.info(
            { err: errorMessage(err) },
            'docker not reachable at start; its leftovers are looked for at the next start',
          );
        },
      );
    const memory = new MemoryGiveBack(log);
    // (a burst of remote connections handed to channels leaves garbage as a bulk apply does)
    const peers = new Peers(key, log, () => memory.changed());
    const tunnels = new TunnelService(
      {
        stateFile: state.file('tunnels.json'),
        keyDir: state.file('tunnel-keys'),
        cidr: opts.overlayCidr,
        ports: opts.udpPorts,
        internalIp: opts.internalIp,
        externalIp: opts.externalIp,
        driver: opts.tunnelDriver,
        charonDir: state.file('charon'),
        secret: key,
      },
      peers,
      log,
    );
    await tunnels.start();
    engine = startEngine(log, opts.pipeBudget);
    peers.useEngine(engine);
    const store = new SegmentStore(state.file('segments'));
    const manager = new SegmentManager({
      log,
      ownerId: state.ownerId,
      store,
      handed,
      containers,
      peers,
      tunnels,
      dialTimeoutMs: opts.dialTimeoutMs,
      udpIdleMs: opts.udpIdleMs,
      retryFailedMs: opts.retryFailedMs,
      engine,
      maxConnections: opts.maxConnections,
      maxUdpSessions: opts.maxUdpSessions,
      accessLog: opts.accessLog,
      allowUnix,
      // (after thousands made or removed, the heap's slack goes back to the system)
      churned: () => memory.changed(),
    });
    // taking over: no create or delete until this daemon serves (its predecessor's are shut too)
    if (handed) void manager.gate.close();
    const services: Services = {
      manager,
      peers,
      tunnels,
      ui: {
        address: opts.ui ? formatDaemonAddress(opts.ui) : null,
        token: (name) => {
          const k = keys.all().find((x) => x.name === name);
          // (a key dropped at a SIGHUP while its connection is open)
          if (!k) throw new WormholeError('FORBIDDEN', `key "${name}" is no longer one of this daemon's`);
          return uiToken(k.psk);
        },
      },
    };
    const server = new ApiServer(makeHandlers(services), makeAttach(manager), keys, log, {
      maxConnections: opts.maxApiConnections,
      idleMs: opts.apiIdleMs,
    });
    server.useEngine(engine);
    for (const addr of opts.listen) await server.listen(addr, handed?.takeApi(formatDaemonAddress(addr)));
    const metricsKey = opts.metrics && `metrics ${formatDaemonAddress(opts.metrics)}`;
    let metrics: MetricsServer | undefined;
    if (opts.metrics && metricsKey) {
      // loaded only when asked for: prom-client costs memory a daemon without --metrics never needs
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { MetricsServer: Server } = require('./metrics') as typeof import('./metrics');
      metrics = new Server(
        {
          segments: () => manager.list(),
          tunnels: () => tunnels.counters(),
          peers: () => peers.list(),
          engine: () => engine?.stats(),
        },
        log,
      );
      await metrics.listen(opts.metrics, handed?.takeApi(metricsKey));
    }
    // The web view; without a takeover it listens now, so that a bad --ui stops the start
    // before any segment is built again
    let ui: UiServer | undefined;
    if (opts.ui) {
      // loaded only when asked for, as the metrics are
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { UiServer: Server } = require('../ui/server') as typeof import('../ui/server');
      ui = new Server(
        {
          segments: () => segmentInfos(services),
          tunnels: () => tunnels.list(),
          tokens: () => keys.all().map((k) => uiToken(k.psk)),
          hostLabel: os.hostname(),
        },
        log,
      );
      if (!opts.takeover) await ui.listen(opts.ui);
    }

    // The segments kept in the state directory, built again (on the handed sockets, when
    // taking over). The API listens first: a peer restarting at the same moment can reach
    // this one for the children its own segments need.
    const { records, skipped } = store.load();
    for (const { file, why } of skipped) log.warn({ file, why }, 'segment record skipped');
    await manager.restore(records);
    // Containers' wormhole.NAME labels, where there is a Docker engine to ask (a host
    // without one is not told every few seconds that it has none)
    let labels: LabelSegments | undefined;
    if (opts.labels && containers.reachableSocket()) {
      labels = new LabelSegments(containers, containers, manager, log, opts.retryFailedMs);
      labels.start();
      services.labels = labels;
    }
    if (handed) {
      state.claim();
      manager.gate.open();
      const unused = handed.ready();
      log.info({ predecessor: handed.predecessor, unused }, 'took over: serving');
      handed = undefined;
    }
    // At a takeover, the web view once the predecessor lets go of its address; a failure
    // then is logged, not fatal: this daemon serves every segment already.
    if (ui && opts.ui && opts.takeover)
      await ui
        .listen(opts.ui, true)
        .catch((err: unknown) => log.error({ err: errorMessage(err) }, 'no web view'));

    const openState = state;
    let stopping = false;
    // A successor (wormholed --takeover) serves: stop accepting, let what is open finish,
    // exit leaving everything it adopts (containers, children on peers, tunnels, the lock).
    const takenOver = (successor: number): void => {
      if (stopping) return;
      stopping = true;
      log.info({ successor }, 'taken over: no longer accepting; open connections may finish');
      sdNotify('STOPPING=1', log);
      manager.stopListening();
      labels?.stop(); // (the successor follows the labels now)
      server.stopAccepting();
      metrics?.close();
      ui?.close();
      point.close(false);
      const deadline = Date.now() + opts.drainTimeoutMs;
      const timer = setInterval(() => {
        const open = manager.openConnections();
        if (open > 0 && Date.now() < deadline) return;
        clearInterval(timer);
        if (open > 0) log.warn({ open }, 'drain timeout: closing what is still open');
        engine?.stop();
        log.info('handed over: exiting');
        process.exit(0);
      }, 100);
    };
    const point = new TakeoverPoint(
      state.file(TAKEOVER_SOCKET),
      log,
      () => {
        // a daemon on its way out has closed its listeners: nothing to hand over
        if (stopping) throw new Error('this daemon is stopping');
        const api = server.listeningFds();
        const mfd = metrics?.listeningFd();
        if (metricsKey && mfd !== undefined) api.push({ address: metricsKey, fd: mfd });
        return { api, heads: manager.listeningSockets() };
      },
      takenOver,
      manager.gate,
    );
    await point.start();
    const exit = (): never => {
      openState.release();
      process.exit(0);
    };
    const stop = (signal: string): void => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting without waiting');
        exit();
      }
      stopping = true;
      log.info({ signal }, 'stopping');
      void (async () => {
        // 1. Nothing new comes in: every API connection (TLS handshakes included) and every
        //    segment head, at once.
        manager.stopListening();
        labels?.stop();
        point.close(true);
        metrics?.close();
        ui?.close();
        await server.close().catch(() => undefined);
        // 2. Segments: connections, children, remote children; bounded, as a peer may hang.
        await withDeadline(
          manager.closeAll(),
          SEGMENTS_LIMIT_MS,
          () => new Error(`segments still closing after ${SEGMENTS_LIMIT_MS / 1000} s`),
        ).catch((err: unknown) => log.error({ err: errorMessage(err) }, 'segments not all closed'));
        // 3. Containers, found by this daemon's label whatever step 2 managed; bounded apart,
        //    so a slow engine gets its own time and nothing else can use it up.
        if (containers.used)
          await withDeadline(
            containers.removeOwned(),
            DOCKER_LIMIT_MS,
            () => new Error(`the Docker engine did not remove them within ${DOCKER_LIMIT_MS / 1000} s`),
          ).catch((err: unknown) => {
            // An engine that is not running has nothing running to remove: not an error then.
            const down = err instanceof WormholeError && err.code === 'DOCKER_UNAVAILABLE';
            log[down ? 'info' : 'error'](
              { err: errorMessage(err) },
              'containers not removed (removed at next start)',
            );
            if (!down) openState.cleanupPending(true);
          });
        engine?.stop();
        log.info('stopped');
        exit();
      })();
    };
    // One failing connection or library callback must not take every segment down with it.
    process.on('uncaughtException', (err) =>
      log.fatal({ err: err.stack ?? String(err) }, 'unexpected error, going on'),
    );
    process.on('unhandledRejection', (err) =>
      log.error({ err: err instanceof Error ? err.stack : String(err) }, 'unhandled rejection, going on'),
    );
    // SIGTERM/SIGINT stop, SIGHUP reads the key file again for new connections, SIGUSR1
    // opens no debugger (signals.ts). Then a Type=notify systemd unit hears that every API
    // listener serves: MAINPID too, as `bin/wormholed` may be started through a wrapper.
    wireSignals({
      log,
      keyFile: opts.keyFile,
      key,
      keyUsers: [keys, peers],
      keys,
      keysFile: opts.keysFile,
      stop,
    });
    // A first channel to a peer cold took 20 ms: one to ourselves runs its code paths once
    // (Peers.warmUp) before the daemon says it has started, so that the first `ping` or
    // `remote` connection after a start (systemd's READY=1, the log line) finds them warm.
    // Bounded: a warm-up that fails or hangs only costs the first call its cold start. Only
    // TCP API addresses speak TLS as peers do.
    const self = opts.listen.find((a) => a.kind === 'tcp' && a.port !== 0);
    if (self?.kind === 'tcp') {
      const host = self.host === '0.0.0.0' ? '127.0.0.1' : self.host === '::' ? '::1' : self.host;
      const t0 = Date.now();
      await withDeadline(
        peers.warmUp(formatDaemonAddress({ ...self, host })),
        WARMUP_LIMIT_MS,
        () => new Error(`no answer within ${WARMUP_LIMIT_MS} ms`),
      )
        .then(() => log.debug({ ms: Date.now() - t0 }, 'peer paths warmed'))
        .catch((err: unknown) => log.debug({ err: errorMessage(err) }, 'peer paths not warmed'));
    }
    log.info({ stateDir: opts.stateDir, keys: keys.size }, 'wormholed started');
    sdNotify(`READY=1\nMAINPID=${process.pid}`, log);
  } catch (err) {
    // (a takeover that fails here leaves the running daemon as it was)
    handed?.abandon();
    engine?.stop();
    if (!opts.takeover) state?.release();
    // One line, never a stack trace: what failed is the user's to fix (a path, a flag).
    const msg = err instanceof WormholeError ? err.message : `cannot start: ${errorMessage(err)}`;
    process.stderr.write(`wormholed: ${msg}\n`);
    process.exit(1);
  }
}

/**
 * The splice engine moves the bytes; if it cannot start (or WORMHOLE_ENGINE=off), the daemon
 * says so once and JavaScript moves them: a slower daemon, never a broken one.
 */
function startEngine(log: Logger, pipeBudget: number): Engine | null {
  if (process.env.WORMHOLE_ENGINE === 'off') {
    log.warn('splice engine off (WORMHOLE_ENGINE=off): JavaScript moves the bytes');
    return null;
  }
  try {
    const engine = new Engine(
      (err) =>
        log.error({ err }, 'the engine could not leave a namespace: new connections go through JavaScript'),
      pipeBudget,
    );
    log.info('splice engine started');
    return engine;
  } catch (err) {
    log.warn({ err: errorMessage(err) }, 'splice engine not available: JavaScript moves the bytes (slower)');
    return null;
  }
}
