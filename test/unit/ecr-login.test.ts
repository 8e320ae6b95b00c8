/**
 * Private images in Amazon ECR: the instance script logs docker in to the
 * image's registry before it pulls (and only then), with the registry and
 * region taken from the reference by a strict pattern. The script is run for
 * real under sh, dash and bash with stub `aws` and `docker` on PATH that
 * record their argv (and the password `docker login` reads on stdin).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import {
  INSTANCE_DEADLINE_FILE,
  INSTANCE_STATE_DIR,
  instanceScript,
  type DockerRunOptions,
} from '../../lambdas/core/container-command.js';
import { ecrImage, ecrPullIssue } from '../../lambdas/core/ecr.js';
import type { ContainerSpec } from '../../lambdas/ports/compute.js';

const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;
const ECR_REGISTRY = '123456789012.dkr.ecr.eu-west-1.amazonaws.com';
const ECR_IMAGE = `${ECR_REGISTRY}/team/trainer:v3@${DIGEST}`;
const HUB_IMAGE = `nvidia/cuda:12.4.1-base-ubuntu22.04@${DIGEST}`;
const OPTIONS: DockerRunOptions = { memory: '30g' };
const PASSWORD = 'eyJwYXlsb2FkIjoi-not-a-real-token';

function spec(image: string): ContainerSpec {
  return {
    jobId: 'job-1',
    image,
    command: ['python', 'train.py'],
    env: {},
    gpus: 1,
    expiresAt: '2030-01-01T00:00:00.000Z',
  };
}

describe('ecrImage', () => {
  test('finds the registry, account, region and repository of a private ECR reference', () => {
    assert.deepEqual(ecrImage(ECR_IMAGE), {
      registry: ECR_REGISTRY,
      account: '123456789012',
      region: 'eu-west-1',
      repository: 'team/trainer',
    });
    assert.deepEqual(ecrImage('210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn/base'), {
      registry: '210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn',
      account: '210987654321',
      region: 'cn-north-1',
      repository: 'base',
    });
    assert.equal(ecrImage('123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/x:1')?.region, 'us-gov-west-1');
  });

  test('other registries, and hosts that only look like ECR, are not ECR', () => {
    for (const reference of [
      HUB_IMAGE,
      'public.ecr.aws/pytorch/pytorch:2.5.1',
      'nvcr.io/nvidia/pytorch:24.05-py3',
      'trainer:v3',
      `${ECR_REGISTRY}.evil.example.com/team/trainer:v3`,
      `evil.example.com/${ECR_REGISTRY}/trainer:v3`,
      '12345678901.dkr.ecr.eu-west-1.amazonaws.com/short-account',
      '123456789012.dkr.ecr.eu-west-1.amazonaws.com:443/with-port',
      '123456789012.dkr.ecr.west.amazonaws.com/bad-region',
    ]) {
      assert.equal(ecrImage(reference), undefined, reference);
    }
  });
});

describe('ecrPullIssue', () => {
  const scope = [
    'arn:aws:ecr:eu-west-1:123456789012:repository/team/*',
    'arn:aws-cn:ecr:cn-north-1:210987654321:repository/bas?',
  ];

  test("an ECR image inside the instance role's repositories, or any other registry, may be added", () => {
    for (const reference of [
      `${ECR_REGISTRY}/team/trainer:v3`,
      '210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn/base',
      HUB_IMAGE,
      'public.ecr.aws/pytorch/pytorch:2.5.1',
    ]) {
      assert.equal(ecrPullIssue(reference, scope), undefined, reference);
    }
    assert.equal(
      ecrPullIssue(`${ECR_REGISTRY}/anything/at/all`, ['arn:aws:ecr:eu-west-1:123456789012:repository/*']),
      undefined,
    );
  });

  test('an ECR image of another repository, account, region or partition is refused with its ARN', () => {
    for (const [reference, arn] of [
      [`${ECR_REGISTRY}/teams/trainer:v3`, 'arn:aws:ecr:eu-west-1:123456789012:repository/teams/trainer'],
      [
        '123456789012.dkr.ecr.eu-west-2.amazonaws.com/team/trainer',
        'arn:aws:ecr:eu-west-2:123456789012:repository/team/trainer',
      ],
      [
        '210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn/bases',
        'arn:aws-cn:ecr:cn-north-1:210987654321:repository/bases',
      ],
      [
        '123456789012.dkr.ecr.us-gov-west-1.amazonaws.com/team/x',
        'arn:aws-us-gov:ecr:us-gov-west-1:123456789012:repository/team/x',
      ],
    ]) {
      assert.match(
        ecrPullIssue(reference, scope) ?? '',
        new RegExp(
          `^is in Amazon ECR \\(${arn.replace(/[.*?/]/g, '\\$&')}\\), which the job instances may not pull from`,
        ),
        reference,
      );
    }
    assert.match(ecrPullIssue(ECR_IMAGE, []) ?? '', /flare:ecrRepositories allows none$/);
  });
});

describe('instanceScript and private ECR images', () => {
  const login = `aws ecr get-login-password --region eu-west-1`;

  test('an ECR image logs docker in to its registry before the container is started; a Docker Hub image does not', () => {
    const lines = instanceScript(spec(ECR_IMAGE), OPTIONS).split('\n');
    const getPassword = lines.findIndex((l) => l.includes(login));
    const dockerLogin = lines.findIndex((l) =>
      l.includes(`docker login --username AWS --password-stdin ${ECR_REGISTRY} `),
    );
    const run = lines.findIndex((l) => l.includes('python3 -c'));
    assert.ok(getPassword > 0 && dockerLogin === getPassword + 1 && run === dockerLogin + 1, lines.join('\n'));
    assert.ok(
      lines.findIndex((l) => l.startsWith('if ! docker container inspect')) < getPassword,
      'only when the container does not exist yet',
    );

    const hub = instanceScript(spec(HUB_IMAGE), OPTIONS);
    assert.ok(!hub.includes('aws ') && !hub.includes('docker login'), hub);
  });

  for (const shell of ['sh', 'dash', 'bash']) {
    const available =
      spawnSync('sh', ['-c', `command -v ${shell} && command -v python3 && command -v flock && command -v base64`])
        .status === 0;
    const run = (image: string, env: Record<string, string> = {}) => {
      const sandbox = fs.mkdtempSync(path.join(os.tmpdir(), 'flare-ecr-'));
      const bin = path.join(sandbox, 'bin');
      fs.mkdirSync(bin);
      fs.writeFileSync(path.join(bin, 'docker'), FAKE_DOCKER, { mode: 0o755 });
      fs.writeFileSync(path.join(bin, 'aws'), FAKE_AWS, { mode: 0o755 });
      const script = instanceScript(spec(image), OPTIONS)
        .replaceAll(INSTANCE_STATE_DIR, path.join(sandbox, 'state'))
        .replaceAll(path.dirname(INSTANCE_DEADLINE_FILE), path.join(sandbox, 'lib'));
      const scriptPath = path.join(sandbox, 'script.sh');
      fs.writeFileSync(scriptPath, script, { mode: 0o700 });
      const result = spawnSync(shell, [scriptPath], {
        env: { PATH: `${bin}:${process.env.PATH}`, FAKE_DIR: sandbox, HOME: sandbox, ...env },
        encoding: 'utf8',
      });
      const calls = fs.existsSync(path.join(sandbox, 'calls'))
        ? fs.readFileSync(path.join(sandbox, 'calls'), 'utf8').trim().split('\n')
        : [];
      fs.rmSync(sandbox, { recursive: true, force: true });
      return { status: result.status, stderr: result.stderr, calls };
    };
    const skip = !available && `${shell}, python3, flock or base64 missing`;

    test(`run by ${shell}: an ECR image gets a login to its registry, with the password on stdin, then the run`, {
      skip,
    }, () => {
      const { status, stderr, calls } = run(ECR_IMAGE);
      assert.equal(status, 0, stderr);
      const commands = calls.map((c) => c.split(' stdin=')[0]).filter((c) => c !== 'docker info');
      assert.deepEqual(commands.slice(0, 4), [
        'docker container inspect flare-job-1',
        login,
        `docker login --username AWS --password-stdin ${ECR_REGISTRY}`,
        'docker run',
      ]);
      assert.equal(
        calls.find((c) => c.startsWith('docker login')),
        `docker login --username AWS --password-stdin ${ECR_REGISTRY} stdin=${PASSWORD}`,
      );
      assert.ok(!calls.some((c) => c.startsWith('aws') && c.includes(PASSWORD)), 'the password never is an argument');
    });

    test(`run by ${shell}: a Docker Hub image is run without aws or docker login`, { skip }, () => {
      const { status, stderr, calls } = run(HUB_IMAGE);
      assert.equal(status, 0, stderr);
      assert.deepEqual(
        calls.filter((c) => c !== 'docker info'),
        ['docker container inspect flare-job-1', 'docker run', 'docker wait flare-job-1'],
      );
    });

    test(`run by ${shell}: a failed ECR login exits 125 saying why, and nothing is run`, { skip }, () => {
      const noPassword = run(ECR_IMAGE, { FAKE_AWS_FAIL: '1' });
      assert.equal(noPassword.status, 125);
      assert.match(noPassword.stderr, new RegExp(`flare: no ECR login for ${ECR_REGISTRY.replaceAll('.', '\\.')}`));
      assert.ok(
        !noPassword.calls.some((c) => c.startsWith('docker login') || c === 'docker run'),
        noPassword.calls.join('\n'),
      );

      const refused = run(ECR_IMAGE, { FAKE_LOGIN_FAIL: '1' });
      assert.equal(refused.status, 125);
      assert.match(refused.stderr, /flare: docker login to .* failed/);
      assert.ok(!refused.calls.includes('docker run'), refused.calls.join('\n'));
    });
  }
});

/** Records `docker <args>` (a login with what it read on stdin; a run as just `docker run`); no container exists before the run. */
const FAKE_DOCKER = `#!/usr/bin/env python3
import os, sys
d = os.environ["FAKE_DIR"]
args = sys.argv[1:]
line = "docker " + " ".join(args)
if args[:1] == ["login"]:
    line += " stdin=" + sys.stdin.read()
if args[:1] == ["run"]:
    line = "docker run"
with open(os.path.join(d, "calls"), "a") as f:
    f.write(line + "\\n")
if args[:1] == ["login"] and os.environ.get("FAKE_LOGIN_FAIL"):
    sys.exit(1)
if args[:2] == ["container", "inspect"]:
    sys.exit(1)
if args[:1] == ["wait"]:
    print("0")
`;

const FAKE_AWS = `#!/bin/sh
echo "aws $*" >> "$FAKE_DIR/calls"
[ -z "\${FAKE_AWS_FAIL:-}" ] || exit 255
printf '%s' '${PASSWORD}'
`;
