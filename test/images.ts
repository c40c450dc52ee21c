/**
 * `npm run images`: build the images that the README's Docker examples, the tests and the
 * bench's cold-start scene use, here, from their recipes under test/fixtures/images/ (no
 * registry is needed): wormhole-test/echo (busybox and an echo server), wormhole/mysql
 * (MariaDB on 127.0.0.1:3306, root without a password) and wormhole/wordpress (a page that
 * shows what it reads from 127.0.0.1:3306). An image whose recipe did not change is kept, so a
 * second run takes seconds. It needs Docker's engine: one that runs is used; else dockerd is
 * started for the build and stopped again (as the tests do; the images stay). The first time it
 * also needs Debian's mirror (the MariaDB images are made from a debootstrap root).
 */
import {
  APP_IMAGE,
  DB_IMAGE,
  ECHO_IMAGE,
  ensureDockerd,
  ensureTestImages,
  stopDockerdIfStarted,
} from './helpers/docker';

async function main(): Promise<void> {
  try {
    await ensureDockerd();
    await ensureTestImages();
  } finally {
    await stopDockerdIfStarted();
  }
  process.stdout.write(
    `images ready: ${ECHO_IMAGE}, ${DB_IMAGE} (wormhole/mysql), ${APP_IMAGE} (wormhole/wordpress)\n`,
  );
}

main().catch((err: Error) => {
  process.stderr.write(`npm run images: ${err.message}\n`);
  process.exit(1);
});
