/**
 * A job's outputs on the deployed artifact: when a running job ends (here a
 * cancel, and an expiry), the bundled tasks function sends one upload command
 * to its instance before terminating it; the instance (support/instance-uploads.ts)
 * runs that command's program with the form the tasks function signed, posting
 * to the fake's S3, which checks the form as S3 does; Release records what was
 * kept; the API lists it from the bucket. The form is good for the job's own
 * prefix only; an upload S3 refuses is recorded on the job. Every call passes
 * the IAM check against the template's policies.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { postPolicyOf } from '../../lambdas/adapters/s3-outputs-upload.js';
import { artifactPerFile, type Artifact } from './support/artifact.js';
import { assertCallsAllowed } from './support/iam-check.js';
import { alice, callsSince, cancelJob, getJob, runningJob, waitForState, type JobView } from './support/scenario.js';
import { OUTPUTS_MAX_BYTES } from './support/synth-context.js';

const deployed = artifactPerFile();
let files: string;

before(async () => {
  files = await mkdtemp(join(tmpdir(), 'flare-outputs-'));
});
after(() => rm(files, { recursive: true, force: true }));

/** A running job whose instance has `result.txt` (5 bytes), `sub/n.txt` (3 bytes) and `z.bin` (4 bytes) in its output directory. */
async function runningJobWithFiles(
  a: Artifact,
  body: Record<string, unknown>,
): Promise<{ job: JobView; instanceId: string }> {
  const running = await runningJob(a, body);
  const dir = join(files, running.job.id);
  await mkdir(join(dir, 'sub'), { recursive: true });
  await writeFile(join(dir, 'result.txt'), 'hello');
  await writeFile(join(dir, 'sub', 'n.txt'), '42\n');
  // Past the deployment's cap (10 bytes with the 8 above): not uploaded, and the record says so.
  await writeFile(join(dir, 'z.bin'), 'zzzz');
  a.uploads.give(running.job.id, dir);
  return running;
}

function bucketOf(a: Artifact): string {
  return a.fns.api.spec.environment.OUTPUTS_BUCKET!;
}

describe('artifact: outputs uploaded at the end of a job', () => {
  it('a cancelled job: uploaded from its instance before it is terminated, recorded, listed by the API', async () => {
    const a = deployed();
    const { job, instanceId } = await runningJobWithFiles(a, { template: 'train' });
    const from = a.mark().calls;
    const done = await cancelJob(a, job.id);
    assert.deepEqual(done.outputs, {
      count: 2,
      bytes: 8,
      truncated: true,
      error: 'over the 10-byte cap: 1 files (4 bytes) were not kept',
    });
    await a.settle();

    const tasksRole = a.fns.tasks.spec.roleLogicalId;
    const calls = a.fake.calls().slice(from);
    const upload = calls.filter((c) => c.action === 'SendCommand' && c.params.Comment === `flare:outputs=${job.id}`);
    assert.equal(upload.length, 1, 'one upload command');
    assert.equal(upload[0]!.principal, tasksRole);
    assert.deepEqual(upload[0]!.params.InstanceIds, [instanceId]);
    assert.deepEqual((upload[0]!.params.Parameters as Record<string, string[]>).executionTimeout, ['600']);
    const puts = calls.filter((c) => c.service === 's3' && c.action === 'PutObject');
    assert.deepEqual(
      puts.map((c) => [c.principal, c.params.Key, c.error]),
      [
        [tasksRole, `vision/${job.id}/result.txt`, undefined],
        [tasksRole, `vision/${job.id}/sub/n.txt`, undefined],
      ],
      "the instance's uploads are the tasks role's PutObject of keys under the job's prefix",
    );
    const terminate = calls.findIndex((c) => c.action === 'TerminateInstances');
    assert.ok(terminate > calls.indexOf(puts[1]!), 'the instance is terminated after its files were uploaded');
    assert.deepEqual(
      a.fake.objects(bucketOf(a), `vision/${job.id}/`).map((o) => [o.key, o.body.toString()]),
      [
        [`vision/${job.id}/result.txt`, 'hello'],
        [`vision/${job.id}/sub/n.txt`, '42\n'],
      ],
    );
    const listed = await a.http.request('GET', `/v1/jobs/${job.id}/outputs`, { caller: alice });
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    assert.deepEqual(
      (listed.body as { items: { path: string; size: number }[] }).items.map((f) => [f.path, f.size]),
      [
        ['result.txt', 5],
        ['sub/n.txt', 3],
      ],
    );
    assert.deepEqual((await getJob(a, job.id)).outputs, {
      count: 2,
      bytes: 8,
      truncated: true,
      error: 'over the 10-byte cap: 1 files (4 bytes) were not kept',
    });
    // The deployment's cap (flare:outputsMaxBytes) reached the bundle and the form: S3 takes no larger file.
    const [run] = a.uploads.runs.filter((r) => r.jobId === job.id);
    assert.equal(run!.request.maxBytes, OUTPUTS_MAX_BYTES);
    assert.deepEqual(postPolicyOf(run!.request.fields).conditions[2], ['content-length-range', 0, OUTPUTS_MAX_BYTES]);
    await assertCallsAllowed(a.template, a.fake.calls(), a.fake.tagsOf);
  });

  it("the form the instance got takes only its own job's prefix: another job's key is refused, nothing stored", async () => {
    const a = deployed();
    const run = a.uploads.runs.at(-1)!;
    const other = `vision/${run.jobId}x/stolen.txt`;
    const boundary = 'b0undary';
    const parts = [...Object.entries(run.request.fields), ['key', other]]
      .map(([k, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`)
      .join('');
    const body = `${parts}--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\nx\r\n--${boundary}--\r\n`;
    const answer = await fetch(run.request.url, {
      method: 'POST',
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      body,
    });
    assert.equal(answer.status, 403);
    const refusal = (await answer.text()).replaceAll('&quot;', '"');
    assert.ok(refusal.includes(`Policy Condition failed: ["starts-with", "$key", "vision/${run.jobId}/"]`), refusal);
    assert.deepEqual(a.fake.objects(bucketOf(a), `vision/${run.jobId}x/`), []);
  });

  it('an expired job whose upload S3 refuses: still terminated and EXPIRED, and its record says the upload failed', async () => {
    const a = deployed();
    const refused = a.fake.inject({ service: 's3', action: 'PutObject', code: 'AccessDenied', status: 403 });
    try {
      const { job } = await runningJobWithFiles(a, { template: 'train', liveTimeoutMinutes: 0.05 });
      const done = await waitForState(a, job.id, ['EXPIRED', 'FAILED', 'SUCCEEDED'], 30_000);
      assert.equal(done.state, 'EXPIRED');
      assert.deepEqual(done.outputs, {
        count: 0,
        bytes: 0,
        error: 'upload failed for 3 files (12 bytes): HTTP 403',
      });
      await a.settle();
      assert.equal(callsSince(a, 0, 'TerminateInstances').length > 0, true);
      assert.ok(refused.hits >= 2);
    } finally {
      refused.remove();
    }
  });
});
