/** The native addon's surface (native/netns.c), typed by hand. */
export interface NetnsBinding {
  /** A new unbound socket made inside the namespace at nsPath (null: the daemon's own). */
  socketIn(nsPath: string | null, family: 4 | 6, type: 'tcp' | 'udp'): number;
  /** A socket made inside the namespace, bound to host:port, listening if TCP: [fd, port]. */
  listenIn(
    nsPath: string | null,
    family: 4 | 6,
    type: 'tcp' | 'udp',
    host: string,
    port: number,
    backlog: number,
  ): [number, number];
}
