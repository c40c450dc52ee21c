/**
 * A tiny Docker registry (the part of the v2 HTTP API that `docker pull` uses) on
 * 127.0.0.1, which the engine trusts over plain HTTP, so that tests can pull an image although
 * no real registry is reachable. It serves one image: a single layer made from a directory.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface TestRegistry {
  /** `127.0.0.1:PORT`, the registry part of the image's name. */
  host: string;
  /** Every request path the engine made. */
  requests: string[];
  close(): Promise<void>;
}

/**
 * Serve `name:tag` whose only layer is `dir` (as tar would pack it) with config `config`
 * (Cmd, Env, ...). Blobs are sent in small pieces with pauses so that a pull shows progress.
 */
export async function startRegistry(
  name: string,
  tag: string,
  dir: string,
  config: Record<string, unknown>,
): Promise<TestRegistry> {
  const tar = (await promisify(execFile)('tar', ['-C', dir, '--numeric-owner', '-c', '.'], {
    encoding: 'buffer',
    maxBuffer: 256 * 1024 * 1024,
  })) as unknown as { stdout: Buffer };
  const layer = zlib.gzipSync(tar.stdout);
  const imageConfig = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config,
      rootfs: { type: 'layers', diff_ids: [sha256(tar.stdout)] },
      history: [{ created_by: 'wormhole test registry' }],
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: {
        mediaType: 'application/vnd.docker.container.image.v1+json',
        size: imageConfig.length,
        digest: sha256(imageConfig),
      },
      layers: [
        {
          mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
          size: layer.length,
          digest: sha256(layer),
        },
      ],
    }),
  );
  const blobs = new Map([
    [sha256(imageConfig), imageConfig],
    [sha256(layer), layer],
  ]);
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const url = req.url ?? '';
    requests.push(`${req.method} ${url}`);
    if (url === '/v2/' || url === '/v2') {
      res.writeHead(200, {
        'Content-Type': 'application/json',
        'Docker-Distribution-API-Version': 'registry/2.0',
      });
      res.end('{}');
      return;
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url);
    if (m && m[1] === name && m[2] === 'manifests' && (m[3] === tag || m[3] === sha256(manifest))) {
      res.writeHead(200, {
        'Content-Type': 'application/vnd.docker.distribution.manifest.v2+json',
        'Content-Length': manifest.length,
        'Docker-Content-Digest': sha256(manifest),
      });
      res.end(req.method === 'HEAD' ? undefined : manifest);
      return;
    }
    const blob = m && m[1] === name && m[2] === 'blobs' ? blobs.get(m[3]) : undefined;
    if (blob) {
      res.writeHead(200, {
        'Content-Type': 'application/octet-stream',
        'Content-Length': blob.length,
        'Docker-Content-Digest': m?.[3],
      });
      if (req.method === 'HEAD') return void res.end();
      // in pieces, so that the engine reports progress
      let at = 0;
      const next = () => {
        if (at >= blob.length) return void res.end();
        const piece = blob.subarray(at, at + 64 * 1024);
        at += piece.length;
        res.write(piece, () => setTimeout(next, 20));
      };
      next();
      return;
    }
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Serve `repo:v1`, an echo image of one layer: the host's static busybox with the applets an
 * echo service needs, whose command is `nc -ll -p 9001 -e cat`.
 */
export async function startEchoRegistry(repo: string): Promise<TestRegistry> {
  const layerDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wh-layer-'));
  try {
    fs.mkdirSync(path.join(layerDir, 'bin'));
    fs.copyFileSync('/bin/busybox', path.join(layerDir, 'bin/busybox'));
    for (const applet of ['sh', 'nc', 'cat']) fs.symlinkSync('busybox', path.join(layerDir, 'bin', applet));
    return await startRegistry(repo, 'v1', layerDir, {
      Env: ['PATH=/bin'],
      Cmd: ['nc', '-ll', '-p', '9001', '-e', 'cat'],
    });
  } finally {
    fs.rmSync(layerDir, { recursive: true, force: true });
  }
}
