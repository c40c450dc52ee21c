/**
 * The native addon (native/), loaded in one place. netns/ and proxy/ each use their half;
 * neither knows the other's.
 */
import * as path from 'node:path';
import { WormholeError, errorMessage } from '../common/errors';
import type { NativeBinding } from './binding';

export type {
  ChanHandle,
  EngineConstants,
  EngineHandle,
  GroupHandle,
  NativeBinding,
  NativeOrigin,
  NativeTail,
  PickSlot,
} from './binding';

let binding: NativeBinding | undefined;

/** The addon, loaded once from where `npm run build` puts it. Throws NATIVE_MISSING. */
export function native(): NativeBinding {
  if (!binding) {
    const file = path.resolve(__dirname, '../../../native/build/Release/wormhole.node');
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      binding = require(file) as NativeBinding;
    } catch (err) {
      throw new WormholeError(
        'NATIVE_MISSING',
        `the native addon is not built (${errorMessage(err)}): run the setup command from the README`,
      );
    }
  }
  return binding;
}
