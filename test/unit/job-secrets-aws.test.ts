/**
 * A job's secrets on AWS, below the API: Ec2SsmCompute.start copies the values
 * into one secret per instance tagged with that instance's ARN (exact
 * Secrets Manager requests, aws-sdk-client-mock) and sends an SSM command that
 * names where they are, never a value; stop deletes the copies. The instance
 * script, run by sh with a fake docker, a fake AWS CLI and a fake metadata
 * service, fetches its own copy and hands docker the values through its
 * environment only.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { beforeEach, describe, test } from 'node:test';
import { EC2Client, DescribeInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import {
  CreateSecretCommand,
  DeleteSecretCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
  SecretsManagerServiceException,
} from '@aws-sdk/client-secrets-manager';
import { ListCommandsCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { Ec2SsmCompute } from '../../lambdas/adapters/ec2-ssm-compute.js';
import { JobSecretCopies } from '../../lambdas/adapters/job-secret-copies.js';
import { INSTANCE_STATE_DIR, instanceScript } from '../../lambdas/core/container-command.js';
import { LaunchFailed, ValidationError } from '../../lambdas/core/errors.js';
import type { ContainerSpec } from '../../lambdas/ports/compute.js';
import { awsError } from '../support/aws-errors.js';
import { launchingJob } from '../support/jobs.js';

const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
const ec2 = new EC2Client({ region: 'eu-west-1', credentials });
const ssm = new SSMClient({ region: 'eu-west-1', credentials });
const sm = new SecretsManagerClient({ region: 'eu-west-1', credentials });
const ec2Mock = mockClient(ec2);
const ssmMock = mockClient(ssm);
const smMock = mockClient(sm);

const VALUE = 'sk-live-0f9e8d7c6b5a';
const projectValues = new Map([['openai-key', VALUE]]);
const copies = new JobSecretCopies({
  client: sm,
  projectSecrets: {
    values: async (_project, names) =>
      new Map(names.flatMap((n) => (projectValues.has(n) ? [[n, projectValues.get(n)!] as const] : []))),
  },
  deployment: 'FlareStack',
  instanceArnPrefix: 'arn:aws:ec2:eu-west-1:123456789012:instance/',
  region: 'eu-west-1',
});
const compute = new Ec2SsmCompute({
  ec2,
  ssm,
  launchTemplateId: 'lt-0123456789abcdef0',
  subnetIds: ['subnet-a'],
  pools: { a10g: { instanceTypes: ['g5.xlarge'], memory: '14g' } },
  secretCopies: copies,
});

const job = launchingJob({ id: 'job-7', instanceIds: ['i-1'], secrets: { OPENAI_API_KEY: 'openai-key' } });
const spec = (overrides: Partial<ContainerSpec> = {}): ContainerSpec => ({
  jobId: 'job-7',
  image: `nvidia/cuda:12.4.1@sha256:${'a'.repeat(64)}`,
  command: ['python', 'eval.py'],
  env: { EPOCHS: '3' },
  gpus: 1,
  expiresAt: '2030-01-01T01:00:00.000Z',
  secrets: { OPENAI_API_KEY: 'openai-key' },
  project: 'vision',
  ...overrides,
});

beforeEach(() => {
  ec2Mock.reset();
  ssmMock.reset();
  smMock.reset();
  ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [] });
});

describe('Ec2SsmCompute with secrets', () => {
  test('start copies the values for each instance, tagged with its ARN, then sends a command that names only where they are', async () => {
    smMock.on(CreateSecretCommand).resolves({});
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-1' } });

    await compute.start(job, spec());

    assert.deepEqual(
      smMock.commandCalls(CreateSecretCommand).map((c) => c.args[0].input),
      [
        {
          Name: 'flare/FlareStack/jobs/job-7/i-1',
          SecretString: JSON.stringify({ OPENAI_API_KEY: VALUE }),
          Tags: [
            { Key: 'flare:deployment', Value: 'FlareStack' },
            { Key: 'flare:job', Value: 'job-7' },
            { Key: 'flare:instance', Value: 'arn:aws:ec2:eu-west-1:123456789012:instance/i-1' },
          ],
        },
      ],
    );
    const sent = JSON.stringify(ssmMock.commandCalls(SendCommandCommand).map((c) => c.args[0].input));
    assert.ok(!sent.includes(VALUE), 'the value is not in the SSM command');
    const script = ssmMock.commandCalls(SendCommandCommand)[0]!.args[0].input.Parameters!.commands![0]!;
    assert.match(
      script,
      new RegExp(`python3 -c '[^']+' ${INSTANCE_STATE_DIR}/job-7.argv.json ${INSTANCE_STATE_DIR}/job-7.secrets.json`),
    );
    const source = decodedFile(script, `${INSTANCE_STATE_DIR}/job-7.secrets.json`);
    assert.deepEqual(source, { secretIdPrefix: 'flare/FlareStack/jobs/job-7/', region: 'eu-west-1' });
    assert.ok(
      (decodedFile(script, `${INSTANCE_STATE_DIR}/job-7.argv.json`) as string[]).includes('--env=OPENAI_API_KEY'),
    );
  });

  test('a second start writes the same values again; a secret gone since submit fails the start, sending nothing', async () => {
    smMock.on(CreateSecretCommand).rejects(awsError(SecretsManagerServiceException, 'ResourceExistsException'));
    smMock.on(PutSecretValueCommand).resolves({});
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    ssmMock.on(SendCommandCommand).resolves({});
    await compute.start(job, spec());
    assert.deepEqual(smMock.commandCalls(PutSecretValueCommand)[0]!.args[0].input, {
      SecretId: 'flare/FlareStack/jobs/job-7/i-1',
      SecretString: JSON.stringify({ OPENAI_API_KEY: VALUE }),
    });

    ssmMock.resetHistory();
    await assert.rejects(
      compute.start({ ...job, secrets: { OPENAI_API_KEY: 'gone' } }, spec({ secrets: { OPENAI_API_KEY: 'gone' } })),
      (error: unknown) => error instanceof LaunchFailed && /no secret named 'gone'/.test(error.message),
    );
    assert.equal(ssmMock.commandCalls(SendCommandCommand).length, 0);
  });

  test('stop deletes the copies at once, one already gone being no error', async () => {
    ec2Mock.on(TerminateInstancesCommand).resolves({});
    smMock.on(DeleteSecretCommand).rejects(awsError(SecretsManagerServiceException, 'ResourceNotFoundException'));
    await compute.stop(job);
    assert.deepEqual(smMock.commandCalls(DeleteSecretCommand)[0]!.args[0].input, {
      SecretId: 'flare/FlareStack/jobs/job-7/i-1',
      ForceDeleteWithoutRecovery: true,
    });
  });

  test('an instance script is never built for secrets without where to fetch them, or with a made-up place', () => {
    const fields = (s: ContainerSpec) => {
      try {
        instanceScript(s, { memory: '14g' });
      } catch (error) {
        assert.ok(error instanceof ValidationError);
        return error.details.map((d) => d.field);
      }
      return [];
    };
    assert.deepEqual(fields(spec()), ['secrets']);
    assert.deepEqual(
      fields(spec({ secretSource: { secretIdPrefix: "flare/X/jobs/job-8/'$(id)'/", region: 'eu-west-1;id' } })),
      ['secretSource.secretIdPrefix', 'secretSource.region'],
    );
  });
});

/** The JSON a script's quoted heredoc writes to `file`. */
function decodedFile(script: string, file: string): unknown {
  const lines = script.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`base64 -d > ${file} `));
  assert.ok(start >= 0, `the script writes ${file}`);
  const end = lines.indexOf('FLARE_ARGV_BASE64', start + 1);
  return JSON.parse(Buffer.from(lines.slice(start + 1, end).join(''), 'base64').toString('utf8'));
}

const available = spawnSync('sh', ['-c', 'command -v python3 && command -v flock && command -v base64']).status === 0;

describe('the instance script with secrets', () => {
  test('fetches its own copy by its instance id and gives docker the value by environment only', {
    skip: !available && 'python3, flock or base64 missing',
  }, async () => {
    const sandbox = fs.mkdtempSync(path.join(os.tmpdir(), 'flare-secrets-script-'));
    // The metadata service: a token, then this instance's id for that token only.
    const imds = http.createServer((req, res) => {
      if (req.method === 'PUT' && req.url === '/latest/api/token') return res.end('tok-1');
      if (req.url === '/latest/meta-data/instance-id' && req.headers['x-aws-ec2-metadata-token'] === 'tok-1')
        return res.end('i-1');
      res.statusCode = 401;
      res.end();
    });
    await new Promise<void>((resolve) => imds.listen(0, '127.0.0.1', resolve));
    try {
      const bin = path.join(sandbox, 'bin');
      fs.mkdirSync(bin);
      // The AWS CLI: records its argv, answers `--query SecretString --output json` as the CLI does.
      fs.writeFileSync(
        path.join(bin, 'aws'),
        `#!/bin/sh\nprintf '%s\\n' "$@" > "${sandbox}/aws-argv"\nprintf '%s\\n' '"{\\"OPENAI_API_KEY\\": \\"${VALUE}\\"}"'\n`,
        { mode: 0o755 },
      );
      // docker: `run` records its argv and the variable it was given, `wait` answers 0, the rest succeed.
      fs.writeFileSync(
        path.join(bin, 'docker'),
        `#!/bin/sh\ncase "$1" in\n  run) printf '%s\\n' "$@" > "${sandbox}/run-argv"; printf '%s' "$OPENAI_API_KEY" > "${sandbox}/run-env";;\n  inspect|container) [ -e "${sandbox}/run-argv" ];;\n  wait) echo 0;;\nesac\n`,
        { mode: 0o755 },
      );
      // The interpreter itself, not a version manager's shim that would put its own directories (and a real
      // AWS CLI) ahead of the fakes on PATH.
      const python = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], {
        encoding: 'utf8',
      }).stdout.trim();
      fs.writeFileSync(path.join(bin, 'python3'), `#!/bin/sh\nexec "${python}" "$@"\n`, { mode: 0o755 });
      const port = (imds.address() as { port: number }).port;
      const script = instanceScript(
        spec({ secretSource: { secretIdPrefix: 'flare/FlareStack/jobs/job-7/', region: 'eu-west-1' } }),
        { memory: '14g' },
      )
        .replaceAll(INSTANCE_STATE_DIR, path.join(sandbox, 'state'))
        .replaceAll('/var/lib/flare', path.join(sandbox, 'lib'))
        .replace('http://169.254.169.254/latest/', `http://127.0.0.1:${port}/latest/`);
      assert.ok(!script.includes(VALUE));
      fs.writeFileSync(path.join(sandbox, 'script.sh'), script, { mode: 0o700 });
      const run = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
        const child = spawn('sh', [path.join(sandbox, 'script.sh')], {
          env: { PATH: `${bin}:${process.env.PATH}`, HOME: sandbox },
        });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => (stderr += d));
        child.on('close', (status: number | null) => resolve({ status, stderr }));
      });
      assert.equal(run.status, 0, run.stderr);
      assert.equal(
        fs.readFileSync(path.join(sandbox, 'run-env'), 'utf8'),
        VALUE,
        'docker had the value in its environment',
      );
      const argv = fs.readFileSync(path.join(sandbox, 'run-argv'), 'utf8');
      assert.ok(argv.includes('--env=OPENAI_API_KEY\n') && !argv.includes(VALUE), 'and not on its command line');
      assert.deepEqual(fs.readFileSync(path.join(sandbox, 'aws-argv'), 'utf8').trim().split('\n'), [
        'secretsmanager',
        'get-secret-value',
        '--region',
        'eu-west-1',
        '--secret-id',
        'flare/FlareStack/jobs/job-7/i-1',
        '--query',
        'SecretString',
        '--output',
        'json',
      ]);
      for (const file of fs.readdirSync(path.join(sandbox, 'state')))
        assert.ok(
          !fs.readFileSync(path.join(sandbox, 'state', file), 'utf8').includes(VALUE),
          `${file} holds no value`,
        );
    } finally {
      imds.close();
      fs.rmSync(sandbox, { recursive: true, force: true });
    }
  });
});
