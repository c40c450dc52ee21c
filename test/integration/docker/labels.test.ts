/**
 * Segments declared on containers (issue 20, SPEC "Many segments, declared"): Debian's
 * docker-compose brings up the seed's WordPress + MySQL pair, the app labelled
 * `wormhole.db: "url :3306 docker-ns self tail url :3306 docker-ns db"`, and the app reads the
 * database on its own 127.0.0.1:3306 with no wormhole command typed. The segment is listed
 * with its container, refused to `delete`, made again when the app is recreated with another
 * label, and gone with the container; a bad label is a failed row, never a crash.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SegmentInfo } from '../../../src/api/protocol';
import { type TestDaemon, startDaemon } from '../../helpers/daemon';
import { APP_IMAGE, DB_IMAGE, DB_VALUE, run } from '../../helpers/docker';
import { suiteCleanup } from '../../helpers/netns';
import { eventually, until } from '../../helpers/wait';

const PROJECT = `whl${randomBytes(3).toString('hex')}`;
const PLAN = 'url :3306 docker-ns self tail url :3306 docker-ns db';

/** The Compose file: the pair, the app labelled with `label` (and a bad label when asked). */
function composeFile(label: string, bad = false): string {
  return [
    'version: "2.4"',
    'services:',
    '  db:',
    `    image: ${DB_IMAGE}`,
    '  app:',
    `    image: ${APP_IMAGE}`,
    '    labels:',
    `      wormhole.db: "${label}"`,
    ...(bad ? ['      wormhole.broken: "url :1 tail nonsense"'] : []),
    '',
  ].join('\n');
}

async function segments(d: TestDaemon): Promise<SegmentInfo[]> {
  const r = await d.cli('list', '--json');
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as SegmentInfo[];
}

describe('segments from Compose labels', () => {
  const suite = suiteCleanup(after);
  let d: TestDaemon;
  let dir: string;
  let app: string;

  const compose = (...args: string[]): Promise<string> =>
    run('docker-compose', ['-p', PROJECT, '-f', path.join(dir, 'docker-compose.yml'), ...args], undefined, {
      timeoutMs: 120_000,
    });
  /** The app's page, fetched inside the app container (busybox wget on its own port 80). */
  const page = (): Promise<string> =>
    run('docker', [
      'exec',
      app,
      'busybox',
      'wget',
      '-q',
      '-O',
      '-',
      'http://127.0.0.1/cgi-bin/index.cgi',
    ]).catch((err: Error) => `error: ${err.message}`);

  before(async () => {
    d = await startDaemon(suite);
    dir = d.dir;
    fs.writeFileSync(path.join(dir, 'docker-compose.yml'), composeFile(PLAN, true));
    suite.after(() => compose('down', '--timeout', '1').then(() => undefined));
    await compose('up', '-d');
    app = `${PROJECT}_app_1`;
  });

  it('wires the app to its database with no command typed', async () => {
    const id = `${app}.db`;
    const seg = await eventually(`segment ${id} ready`, async () => {
      const s = (await segments(d)).find((x) => x.id === id);
      assert.ok(s && s.state === 'ready', JSON.stringify(s));
      return s;
    });
    assert.equal(seg.label, app);
    const rows = await d.cli('list');
    assert.match(rows.stdout, new RegExp(`${id}.*label=${app}`));
    assert.equal(
      (await until('the page reads the database', page, (p) => p.trim() === DB_VALUE)).trim(),
      DB_VALUE,
    );
  });

  it('lists a bad label as failed, with why, and goes on', async () => {
    const broken = (await segments(d)).find((x) => x.id === `${app}.broken`);
    assert.ok(broken, 'the bad label is listed');
    assert.equal(broken.state, 'failed');
    assert.match(broken.error ?? '', /label wormhole\.broken: "nonsense" is not an action/);
    assert.equal((await d.cli('ping')).code, 0);
  });

  it('refuses a delete of a label segment, naming its container', async () => {
    const r = await d.cli('delete', `${app}.db`);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`belongs to container ${app} \\(its label wormhole\\.db\\)`));
    assert.ok((await segments(d)).some((x) => x.id === `${app}.db`));
  });

  it('makes the segment again when the app is recreated with another label, and deletes it with the app', async () => {
    fs.writeFileSync(path.join(dir, 'docker-compose.yml'), composeFile(`${PLAN} health off`));
    await compose('up', '-d');
    await eventually('the new plan is in force', async () => {
      const all = await segments(d);
      const s = all.find((x) => x.id === `${app}.db`);
      assert.ok(s && s.state === 'ready', JSON.stringify(s));
      assert.ok(!all.some((x) => x.id === `${app}.broken`), 'the bad label went with it');
      return true;
    });
    assert.equal(
      (await until('the page reads the database', page, (p) => p.trim() === DB_VALUE)).trim(),
      DB_VALUE,
    );
    await compose('rm', '--stop', '--force', 'app');
    await eventually('the segment went with its container', async () => {
      assert.ok(
        !(await segments(d)).some((x) => x.id.startsWith(`${app}.`)),
        'no segment of the app is left',
      );
      return true;
    });
  });
});
