/**
 * The deployed API answers `POST /v1/jobs/{id}/session` with the stack's own
 * Session Manager documents (lib/session-documents.ts, handed to the bundle as
 * SESSION_SHELL_DOCUMENT / SESSION_PORT_DOCUMENT), never AWS's unlogged ones:
 * the only documents the researchers' policy lets them start (session-iam.test.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { artifactPerFile } from './support/artifact.js';
import { alice, submitUntilRunning } from './support/scenario.js';

const deployed = artifactPerFile();

describe('artifact: sessions into a running job', () => {
  it("answers a shell with the stack's logged shell document on the job's instance", async () => {
    const a = deployed();
    const job = await submitUntilRunning(a);

    const response = await a.http.request('POST', `/v1/jobs/${job.id}/session`, {
      caller: alice,
      body: { kind: 'shell' },
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const plan = response.body as Record<string, unknown>;
    assert.equal(plan.documentName, 'FlareStack-JobShell');
    assert.deepEqual(plan.parameters, {});
    assert.equal(plan.target, (job as { instanceIds?: string[] }).instanceIds?.[0]);
  });
});
