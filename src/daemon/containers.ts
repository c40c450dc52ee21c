/**
 * Containers for segments. Placeholder until the Docker adapter lands.
 */
import { WormholeError } from '../common/errors';
import type { ContainerRuntime } from '../segment/context';

const unavailable = (): WormholeError =>
  new WormholeError('DOCKER_UNAVAILABLE', 'Docker support is not available in this build yet');

/** The daemon's container runtime. */
export class Containers implements ContainerRuntime {
  async prepare(): Promise<void> {
    throw unavailable();
  }
  async run(): Promise<{ id: string; nsPath: string }> {
    throw unavailable();
  }
  async namespaceOf(): Promise<string> {
    throw unavailable();
  }
  async remove(): Promise<void> {}
  async removeOwned(): Promise<void> {}
}
