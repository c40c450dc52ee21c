/** Segments as `list --json` has them, made up for the web view's tests. */
import type { EndpointInfo, SegmentInfo } from '../../../src/api/protocol';

/** An endpoint: TCP on 127.0.0.1:80 in the host's namespace unless `o` says otherwise. */
export const ep = (o: Partial<EndpointInfo> = {}): EndpointInfo => ({
  proto: 'tcp',
  ns: null,
  host: '127.0.0.1',
  port: 80,
  ...o,
});

/** A ready segment from 127.0.0.1:8000 to 127.0.0.1:9000 unless `o` says otherwise. */
export function seg(id: string, o: Partial<SegmentInfo> = {}): SegmentInfo {
  return {
    id,
    url: `tcp://127.0.0.1:${o.head?.port ?? 8000}`,
    head: ep({ port: 8000 }),
    tail: ep({ port: 9000 }),
    state: 'ready',
    parent: null,
    remote: false,
    connections: 0,
    containers: [],
    ...o,
  };
}
