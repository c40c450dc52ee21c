/**
 * Every error code wormhole reports, in one list: the wire carries them (`{code, message}`),
 * `WormholeError` takes only these, and a script may match on them (`--json`). The README's
 * "Error codes" lists the same words (a test checks it), each with what to do.
 *
 * What is not here: errno names (ENOENT, ECONNREFUSED, ...). A system error under a
 * wormhole error rides beside its code, in `WormholeError.errno`, where a retry looks for it;
 * the addon's own Errors carry either an errno name or one of NS_INVALID, NOT_A_SOCKET and
 * ADDR_IN_USE (native/, wh_coded_error), which src/netns turns into a WormholeError.
 */
export const ERROR_CODES = [
  /** The operation was abandoned because its segment closed or was deleted meanwhile. */
  'ABORTED',
  /** Something listens on that address (or unix path) already. */
  'ADDR_IN_USE',
  /** The address to bind is not one of that namespace's. */
  'ADDR_NOT_AVAILABLE',
  /** An id prefix names several segments (CLI): give more of the id. */
  'AMBIGUOUS_ID',
  /** The daemon refused the TLS handshake: its key differs from ours. */
  'AUTH_FAILED',
  /** An environment variable has a value that is not allowed (WORMHOLE_LOG). */
  'BAD_ENV',
  /** A daemon flag's value cannot be used (--allow-bind, --metrics). */
  'BAD_FLAG',
  /** A frame is not JSON, or nests too deep. */
  'BAD_FRAME',
  /** A request (or a peer's tunnel request) does not fit the wire schema. */
  'BAD_REQUEST',
  /** A reply (from a daemon or a peer) does not fit the wire schema. */
  'BAD_RESPONSE',
  /** docker-run would bind-mount a host path that --allow-bind does not allow. */
  'BIND_REFUSED',
  /** The connection to the daemon failed or closed before the reply. */
  'CONNECTION_LOST',
  /** The tail's container did not come back within the dial timeout. */
  'CONTAINER_DOWN',
  /** A container wormhole started stopped at once. */
  'CONTAINER_EXITED',
  /** No container has that name or id. */
  'CONTAINER_NOT_FOUND',
  /** The container exists but is not running (or is paused). */
  'CONTAINER_NOT_RUNNING',
  /** No daemon answers at the address given (-H, WORMHOLE_HOST). */
  'DAEMON_UNREACHABLE',
  /** A tail could not be connected to, retries included. */
  'DIAL_FAILED',
  /** The Docker engine refused a request. */
  'DOCKER_FAILED',
  /** No Docker engine answers (DOCKER_HOST, /var/run/docker.sock). */
  'DOCKER_UNAVAILABLE',
  /** The key that connected may not do that (`--keys`: its options say what it may do). */
  'FORBIDDEN',
  /** A frame is over the 1 MiB limit. */
  'FRAME_TOO_LARGE',
  /** The segment is a child of another, which needs it: delete its parent. */
  'HAS_PARENT',
  /** A host name does not resolve. */
  'HOST_NOT_FOUND',
  /** A segment with that id exists already. */
  'ID_EXISTS',
  /** An image name is not valid, or the image cannot be pulled. */
  'IMAGE_UNAVAILABLE',
  /** A bug in the daemon: the message says what failed, the daemon's log has the stack. */
  'INTERNAL',
  /** strongSwan's charon (userspace IPsec) failed, refused a tunnel, or spoke malformed VICI. */
  'IPSEC_FAILED',
  /** A line of the keys file (--keys) cannot be used: the message names the file and the line. */
  'KEYS_INVALID',
  /** The key file can be read by others than its owner. */
  'KEY_EXPOSED',
  /** There is no key file, or no key for a TCP connection. */
  'KEY_MISSING',
  /** The key file cannot be read (a directory, no permission). */
  'KEY_UNREADABLE',
  /** The key is shorter than 16 characters. */
  'KEY_WEAK',
  /** The segment was made from a container's label: it goes with the label or the container. */
  'LABEL_OWNED',
  /** The daemon cannot listen on an address given with -H or --metrics. */
  'LISTEN_FAILED',
  /** The native addon is not built. */
  'NATIVE_MISSING',
  /** A unix path names a file that is not a socket, which wormhole never removes. */
  'NOT_A_SOCKET',
  /** No segment (or tunnel) with that id (or host). */
  'NOT_FOUND',
  /** The tail was not ready (`ready`) within the dial timeout. */
  'NOT_READY',
  /** `ready health` on a container whose image has no HEALTHCHECK. */
  'NO_HEALTHCHECK',
  /** A unix head has no path. */
  'NO_PATH',
  /** The daemon did not answer a request in time. */
  'NO_REPLY',
  /** No route to a tunnel's peer from this host. */
  'NO_ROUTE',
  /** A connection came before its segment had a tail. */
  'NO_TAIL',
  /** A namespace word or file is not a network namespace. */
  'NS_INVALID',
  /** The network namespace does not exist. */
  'NS_NOT_FOUND',
  /** The tunnel overlay range has no free address pair left. */
  'OVERLAY_FULL',
  /** A unix socket's directory does not exist. */
  'PATH_NOT_FOUND',
  /** The peer's daemon refused us: its key differs. */
  'PEER_REFUSED',
  /** The peer's daemon cannot be reached. */
  'PEER_UNREACHABLE',
  /** Permission denied in a namespace: wormholed must run as root. */
  'PERMISSION',
  /** The tunnel UDP port range has no free port left. */
  'PORTS_FULL',
  /** The head and the tail cannot be joined (udp to tcp; a PROXY header to udp). */
  'PROTO_MISMATCH',
  /** A connection or UDP session refused at a segment's limit. */
  'REFUSED',
  /** A reply would be over the 1 MiB limit of a frame (`list` of thousands of segments). */
  'REPLY_TOO_LARGE',
  /** The tail is the head itself. */
  'SELF_PROXY',
  /** The state directory cannot be used (a file, under a file, unwritable, full). */
  'STATE_DIR',
  /** Another wormholed uses the state directory. */
  'STATE_LOCKED',
  /** A system call failed; the message says which (its errno name is kept for retries). */
  'SYSTEM_ERROR',
  /** A unix tail has no path. */
  'TAIL_NO_PATH',
  /** A tail has no port. */
  'TAIL_NO_PORT',
  /** --takeover found no daemon to take over from, or the daemon did not hand over. */
  'TAKEOVER_FAILED',
  /** A create or delete came while a takeover hands this daemon's segments over: try again. */
  'TAKEOVER_UNDER_WAY',
  /** No answer from the daemon while connecting. */
  'TIMEOUT',
  /** An external tool (ip, wg, wireguard-go) failed. */
  'TOOL_FAILED',
  /** An external tool is not installed. */
  'TOOL_MISSING',
  /** An interface named as a tunnel is not one of wormhole's. */
  'TUNNEL_INVALID',
  /** A tunnel's peer is this host itself. */
  'TUNNEL_TO_SELF',
  /** No tunnel driver (WireGuard, IPsec) is available on this host. */
  'TUNNEL_UNAVAILABLE',
  /** The daemon serves no web view (`wormhole ui`): it was started without --ui. */
  'UI_OFF',
  /** The CLI failed in a way it did not expect (--json output only). */
  'UNEXPECTED',
  /** A unix tail on the host's filesystem that --allow-unix does not allow (dialed as root). */
  'UNIX_REFUSED',
  /** A reply carried a code this wormhole does not know: the daemon runs another version. */
  'UNKNOWN_CODE',
  /** The request names a method this daemon does not have. */
  'UNKNOWN_METHOD',
  /** A combination of actions wormhole does not do. */
  'UNSUPPORTED',
  /** A command, flag or action is used wrong (CLI exit 2). */
  'USAGE',
  /** The two ends speak different protocol versions. */
  'VERSION_MISMATCH',
] as const;

/** One of wormhole's error codes. */
export type ErrorCode = (typeof ERROR_CODES)[number];

const KNOWN: ReadonlySet<string> = new Set(ERROR_CODES);

/** Is this text one of wormhole's error codes? */
export function isErrorCode(text: string): text is ErrorCode {
  return KNOWN.has(text);
}
