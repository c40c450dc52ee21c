/**
 * Tunnels between this daemon and its peers. Placeholder until the tunnel engines land:
 * every call says tunnels are not available in this build.
 */
import type { Result } from '../api/protocol';
import { WormholeError } from '../common/errors';
import type { TunnelLink } from '../segment/context';

const unavailable = (): WormholeError =>
  new WormholeError('TUNNEL_UNAVAILABLE', 'tunnels are not available in this build yet');

/** The daemon's tunnel service. */
export class TunnelService implements TunnelLink {
  async ensure(): Promise<{ localIp: string; remoteIp: string }> {
    throw unavailable();
  }
  async create(_host: string, _udp: boolean): Promise<Result<'tunnel-create'>> {
    throw unavailable();
  }
  async delete(_host: string): Promise<boolean> {
    throw unavailable();
  }
  async list(): Promise<Result<'tunnel-list'>['tunnels']> {
    return [];
  }
  async fromPeer(
    _op: string,
    _data: Record<string, unknown>,
    _from: string,
  ): Promise<Record<string, unknown>> {
    throw unavailable();
  }
}
