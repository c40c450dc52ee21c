import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isPlanLabel, labelActions } from '../../../src/segment/labels';
import type { LabelledContainer } from '../../../src/docker/runtime';

const compose = (name: string, service: string, running = true, project = 'shop'): LabelledContainer => ({
  id: `id-of-${name}`,
  name,
  running,
  labels: { 'com.docker.compose.project': project, 'com.docker.compose.service': service },
});

describe("a label's plan", () => {
  const app = compose('shop_app_1', 'app');
  const all = [app, compose('shop_db_1', 'db'), compose('other_db_1', 'db', true, 'other')];
  const words = (plan: string, c = app, within = all): string[] =>
    labelActions(plan, c, within).flatMap((a) => [a.verb, ...a.args]);

  it('makes docker-ns self the labelled container, and a service of its project that service', () => {
    assert.deepEqual(words('url :3306 docker-ns self tail url :3306 docker-ns db'), [
      'url',
      ':3306',
      'docker-ns',
      'id-of-shop_app_1',
      'tail',
      'url',
      ':3306',
      'docker-ns',
      'shop_db_1',
    ]);
  });

  it('leaves a name that is no service of the project (a container name) and the host alone', () => {
    assert.deepEqual(words('url :80 docker-ns tail docker-ns cache'), [
      'url',
      ':80',
      'docker-ns',
      'tail',
      'docker-ns',
      'cache',
    ]);
    const lone: LabelledContainer = { id: 'x', name: 'lone', running: true, labels: {} };
    assert.deepEqual(words('url :1 tail docker-ns db', lone), ['url', ':1', 'tail', 'docker-ns', 'db']);
  });

  it('refuses a service not running yet, an id, and a plan that does not parse', () => {
    const stopped = [app, compose('shop_db_1', 'db', false)];
    assert.throws(
      () => labelActions('url :1 tail docker-ns db', app, stopped),
      /the service db is not running/,
    );
    assert.throws(() => words('id mine url :1'), /a label plan names no id: the segment is CONTAINER\.NAME/);
    assert.throws(() => words('url :1 tail nonsense'), /"nonsense" is not an action/);
  });

  it('is read only from wormhole.NAME, NAME without dots, and never from the daemon own labels', () => {
    assert.ok(isPlanLabel('wormhole.db'));
    assert.ok(isPlanLabel('wormhole.web-2_a'));
    for (const key of [
      'wormhole.test.recipe',
      'wormhole.',
      'wormhole.owner',
      'wormhole.segment',
      'wormhole.step',
      'other.db',
    ])
      assert.ok(!isPlanLabel(key), key);
  });
});
