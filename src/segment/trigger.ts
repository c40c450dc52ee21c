/**
 * A segment's trigger: its steps run at the first connection (and again after idle let go of
 * what they made), once however many connections wait for it; a failed run is retried by the
 * next connection. What a run makes is kept in a scope of its own, released with the segment
 * or by idle.
 */
import type { Step } from '../api/grammar';
import { DisposableStack } from '../common/disposable';
import { errorMessage } from '../common/errors';
import type { Logger } from '../common/log';
import { TriggerStats } from './stats';

/** What a trigger needs of its segment. */
export interface TriggerHost<T> {
  readonly id: string;
  readonly log: Logger;
  /** Where the run's scope is released at the segment's close. */
  readonly stack: DisposableStack;
  isClosed(): boolean;
  /** Run the steps (the manager knows how), making what they make in `scope`; the tail they give. */
  runSteps(steps: Step[], scope: DisposableStack): Promise<T>;
  /** Point the segment at the tail a run gave. */
  setTail(tail: T): Promise<void>;
  /** A run starts, and one has ended well (for idle). */
  running(): void;
  ran(): void;
  /** The tail as the log names it. */
  tailText(): string;
}

/** One segment's trigger and its runs. */
export class Trigger<T> {
  private run: Promise<void> | undefined;
  /** What the last run made (released with the segment, or by idle). */
  private scope: DisposableStack | undefined;
  private scopeKept = false;
  readonly stats = new TriggerStats();

  constructor(
    readonly steps: Step[],
    private readonly host: TriggerHost<T>,
  ) {}

  /** A run is under way or has ended well (and was not let go of since). */
  get started(): boolean {
    return this.run !== undefined;
  }

  /** Run the steps once; concurrent callers wait for the same run; a failure is retried next time. */
  ensure(): Promise<void> {
    this.run ??= this.start();
    return this.run;
  }

  private start(): Promise<void> {
    const h = this.host;
    h.running();
    const scope = new DisposableStack();
    h.log.info({ segment: h.id }, 'trigger running');
    const started = Date.now();
    const ran = this.stats.start();
    return h.runSteps(this.steps, scope).then(
      async (tail) => {
        if (h.isClosed()) {
          void scope.dispose();
          ran('the segment was deleted while its trigger ran');
          throw new Error('segment was deleted while its trigger ran');
        }
        // (once: each run after idle puts its scope in this same entry)
        if (!this.scopeKept) {
          this.scopeKept = true;
          h.stack.defer(() => this.scope?.dispose());
        }
        this.scope = scope;
        await h.setTail(tail).catch((err: unknown) => {
          ran(errorMessage(err));
          throw err;
        });
        ran();
        h.ran();
        h.log.info({ segment: h.id, ms: Date.now() - started, tail: h.tailText() }, 'trigger ran');
      },
      async (err: unknown) => {
        this.run = undefined;
        if (!h.isClosed()) ran(errorMessage(err));
        await scope.dispose().catch(() => undefined);
        h.log.error({ segment: h.id, err: errorMessage(err) }, 'trigger failed');
        throw err;
      },
    );
  }

  /** Idle lets go: the next connection runs the steps again. What the last run made, to release. */
  rearm(): DisposableStack | undefined {
    const scope = this.scope;
    this.scope = undefined;
    this.run = undefined;
    return scope;
  }
}
