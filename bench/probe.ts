/**
 * `node probe.js HOST PORT ROUNDS`: the latency measurement run from inside a namespace
 * (`ip netns exec NS node probe.js ...`), printed as JSON: the two-hosts scene measures
 * from the first test host, which this process is not in. `node probe.js conns HOST PORT
 * COUNT`: the connection rate (8 in flight) the same way, printed as `{"connsPerSec": N}`.
 * `node probe.js idle HOST PORT COUNT PID...`: COUNT idle connections opened (each answered
 * once), then the resident memory of the PIDs (MiB), printed as idleMemory's result.
 */
import { connectionRate, idleMemory, latency } from './measure';

const args = process.argv.slice(2);
const run =
  args[0] === 'conns'
    ? connectionRate(args[1], Number(args[2]), Number(args[3])).then((connsPerSec) => ({ connsPerSec }))
    : args[0] === 'idle'
      ? idleMemory(args[1], Number(args[2]), [Number(args[3])], () => args.slice(4).map(Number))
      : latency(args[0], Number(args[1]), Number(args[2]));
run.then(
  (r) => process.stdout.write(JSON.stringify(r)),
  (err: unknown) => {
    console.error((err as Error).message);
    process.exit(1);
  },
);
