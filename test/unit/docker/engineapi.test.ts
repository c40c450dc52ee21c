/**
 * Reading the engine's refusals (src/docker/engineapi.ts): a refusal because of a
 * container's state is Docker's 409 or Podman's 500 "container state improper", and nothing
 * else.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isStateConflict } from '../../../src/docker/engineapi';

/** An error as docker-modem makes it: the status and the engine's JSON body. */
const refusal = (statusCode: number, json: unknown) =>
  Object.assign(new Error('refused'), { statusCode, json });

describe("the engine's refusals", () => {
  it("takes Docker's 409 and Podman's 500 'container state improper' for a state conflict", () => {
    assert.equal(isStateConflict(refusal(409, { message: 'Container x is not running' })), true);
    assert.equal(
      isStateConflict(
        refusal(500, {
          cause: 'container state improper',
          message: '"created" is not running, can\'t pause: container state improper',
          response: 500,
        }),
      ),
      true,
    );
  });

  it('leaves every other failure alone', () => {
    assert.equal(isStateConflict(refusal(500, { message: 'disk full' })), false);
    assert.equal(isStateConflict(refusal(500, null)), false);
    assert.equal(isStateConflict(refusal(404, { cause: 'no such container' })), false);
    assert.equal(isStateConflict(new Error('ECONNREFUSED')), false);
    assert.equal(isStateConflict(undefined), false);
  });
});
