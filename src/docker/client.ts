/**
 * The Docker Engine API client: made on first use from the environment as it was when the
 * runtime was made (DOCKER_HOST honoured, else Docker's socket or Podman's: host.ts), with an
 * ordinary call's time limit, and what a failed call means as one line a user can act on.
 */
import * as fs from 'node:fs';
import type Dockerode from 'dockerode';
import { WormholeError, errnoCode, errorMessage } from '../common/errors';
import { UNREACHABLE, engineMessage, isAbort } from './engineapi';
import { engineHost, startHint, unixPath } from './host';

/** How long an ordinary Engine API call may take before the engine counts as not answering. */
const CALL_TIMEOUT_MS = 30_000;

/** What docker-modem reads from the environment to find the engine. */
const DOCKER_ENV = ['DOCKER_HOST', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH'] as const;

function setEnv(values: Record<string, string | undefined>): void {
  for (const [k, v] of Object.entries(values)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
}

/** One daemon's way to the engine. */
export class EngineClient {
  /** The engine's address the client was made with (then fixed: DOCKER_HOST or a socket found). */
  private madeFor: string | undefined;
  /** Made on first use: dockerode and what it loads cost ~20 MiB a daemon that runs no container never needs. */
  private client: Dockerode | undefined;
  /** Why no client could be made from the environment (a malformed DOCKER_HOST, say). */
  private clientError: string | undefined;
  /** An ordinary call's time limit. */
  readonly callTimeoutMs: number;

  constructor(callTimeoutMs = CALL_TIMEOUT_MS) {
    this.callTimeoutMs = callTimeoutMs;
  }

  /** DOCKER_* as they were when this runtime was made: the client, made later, reads them. */
  private readonly env = Object.fromEntries(DOCKER_ENV.map((k) => [k, process.env[k]] as const));

  /**
   * Where the engine is expected (host.ts: DOCKER_HOST, else Docker's socket, else Podman's),
   * looked for again until a client is made, so that an engine started after the daemon is
   * found.
   */
  get host(): string {
    return this.madeFor ?? engineHost(this.env.DOCKER_HOST, fs.existsSync);
  }

  /**
   * Whether an engine may be there to ask: DOCKER_HOST names one over TCP, or the unix socket
   * it names (or Docker's or Podman's) exists. Nothing is connected to.
   */
  reachableSocket(): boolean {
    const socket = unixPath(this.host);
    return socket === undefined || fs.existsSync(socket);
  }

  /** Whether this run has talked to the engine (so it may have started containers). */
  get used(): boolean {
    return this.client !== undefined || this.clientError !== undefined;
  }

  /** The client (made now if it is the first call). */
  api(): Dockerode {
    if (!this.client && !this.clientError) {
      // Making a client connects to nothing; it only reads DOCKER_HOST (and TLS files).
      const now = Object.fromEntries(DOCKER_ENV.map((k) => [k, process.env[k]] as const));
      const host = this.host;
      // (the socket found, for the client, which knows only DOCKER_HOST and Docker's default)
      setEnv({ ...this.env, DOCKER_HOST: host });
      this.madeFor = host;
      try {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const DockerodeClass = require('dockerode') as typeof Dockerode;
        this.client = new DockerodeClass();
      } catch (err) {
        this.clientError = errorMessage(err);
      } finally {
        setEnv(now);
      }
    }
    if (!this.client) {
      throw new WormholeError(
        'DOCKER_UNAVAILABLE',
        `cannot use the Docker engine at ${this.host}: ${this.clientError ?? 'no client'}`,
      );
    }
    return this.client;
  }

  /** Options for an ordinary call: a time limit. */
  timed(): { abortSignal: AbortSignal } {
    return { abortSignal: AbortSignal.timeout(this.callTimeoutMs) };
  }

  /** What a failed Engine API call means, as one line a user can act on. */
  failure(err: unknown, what: string): WormholeError {
    if (err instanceof WormholeError) return err;
    const code = errnoCode(err);
    if (code === 'EACCES' || code === 'EPERM') {
      return new WormholeError(
        'DOCKER_UNAVAILABLE',
        `no permission to use the Docker engine at ${this.host} (${code}): run the daemon as root`,
      );
    }
    if (code && UNREACHABLE.has(code)) {
      return new WormholeError(
        'DOCKER_UNAVAILABLE',
        `the Docker engine is not running at ${this.host} (${code}): ${startHint(this.host)}`,
      );
    }
    if (isAbort(err)) {
      return new WormholeError(
        'DOCKER_UNAVAILABLE',
        `the Docker engine at ${this.host} did not answer within ${this.callTimeoutMs / 1000} s (${what})`,
      );
    }
    return new WormholeError('DOCKER_FAILED', `${what}: ${engineMessage(err)}`);
  }
}
