/**
 * `node probe.js HOST PORT ROUNDS`: the latency measurement run from inside a namespace
 * (`ip netns exec NS node probe.js ...`), printed as JSON: the two-hosts scene measures
 * from the first test host, which this process is not in.
 */
import { latency } from './measure';

const [host, port, rounds] = process.argv.slice(2);
latency(host, Number(port), Number(rounds)).then(
  (r) => process.stdout.write(JSON.stringify(r)),
  (err: unknown) => {
    console.error((err as Error).message);
    process.exit(1);
  },
);
