/**
 * `/v1/templates` through the API Lambda on DynamoDB Local: every route, every
 * role (admin, member of the owner project, member of another project, anyone
 * signed in), names unique per owner, the `templates` quota, and deletes that
 * are refused while active jobs use the template — also when a job races them;
 * names resolve in one request, counted at the DynamoDB client.
 */
import assert from 'node:assert/strict';
import { before, beforeEach, describe, it } from 'node:test';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { PutCommand, type BatchGetCommandOutput } from '@aws-sdk/lib-dynamodb';
import { JobState } from '../../lambdas/core/job.js';
import { seedTemplate } from '../../lambdas/core/templates.js';
import { apiWorld, caller, dynamoPerFile, IMAGE, template, type ApiWorld } from '../support/harness.js';
import { expectError } from '../support/api-errors.js';

const ALICE = caller('alice', 'vision');
const BOB = caller('bob', 'audio');
const CAROL = caller('carol', 'vision', 'audio');
const DAVE = caller('dave');
const ROOT = caller('root', 'admin');

const TRAIN = {
  name: 'train',
  pool: 'local',
  image: IMAGE.name,
  command: ['python', 'train.py'],
  maxLiveTimeoutMinutes: 120,
};

type Sent = { operation: string; input: Record<string, any> };

/**
 * Every request the client sends (operation, marshalled input), and the name claims (`<owner>#<name>`)
 * that the next BatchGetItem is to leave unprocessed, as DynamoDB does when it throttles. At this step
 * the document client has marshalled the input and already unmarshalled the output.
 */
function watchRequests(client: DynamoDBClient): { sent: Sent[]; defer: Set<string> } {
  const watch = { sent: [] as Sent[], defer: new Set<string>() };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const operation = String((context as { commandName?: string }).commandName).replace(/Command$/, '');
      watch.sent.push({ operation, input: structuredClone(args.input as Record<string, any>) });
      const result = await next(args);
      const output = result.output as BatchGetCommandOutput;
      if (operation === 'BatchGetItem' && watch.defer.size) {
        for (const [table, items] of Object.entries(output.Responses ?? {})) {
          const held = items.filter((item) => watch.defer.has(item.name));
          output.Responses![table] = items.filter((item) => !held.includes(item));
          if (held.length)
            output.UnprocessedKeys = {
              ...output.UnprocessedKeys,
              [table]: { Keys: held.map(({ kind, name }) => ({ kind, name })), ConsistentRead: true },
            };
        }
        watch.defer.clear();
      }
      return result;
    },
    { step: 'build', name: 'watchTemplateReads', override: true },
  );
  return watch;
}

/** The reads of name claims and templates among `sent`, each as the keys it asked for; every one consistent. */
function templateReads(sent: Sent[]): string[][] {
  const reads = sent.flatMap(({ operation, input }) => {
    if (operation === 'GetItem') return [{ keys: [input.Key], consistent: input.ConsistentRead }];
    if (operation === 'BatchGetItem')
      return Object.values<{ Keys: any[]; ConsistentRead?: boolean }>(input.RequestItems).map((r) => ({
        keys: r.Keys,
        consistent: r.ConsistentRead,
      }));
    return [];
  });
  const ofTemplates = reads.filter((read) => read.keys.some((key) => String(key.kind?.S).startsWith('template')));
  for (const read of ofTemplates)
    assert.equal(read.consistent, true, `an inconsistent read of ${JSON.stringify(read.keys)}`);
  return ofTemplates.map((read) => read.keys.map((key) => key.name.S));
}

describe('templates API', () => {
  const dynamo = dynamoPerFile();
  let w: ApiWorld;
  beforeEach(async () => {
    w = await apiWorld(dynamo(), { pools: [{ name: 'local', gpus: 4 }] });
  });

  async function create(body: Record<string, unknown>, as = ALICE) {
    const response = await w.call('POST', '/v1/templates', as, { body });
    assert.equal(response.status, 201, JSON.stringify(response.body));
    return response.body;
  }

  async function submit(body: Record<string, unknown>, as = ALICE) {
    const response = await w.call('POST', '/v1/jobs', as, { body });
    assert.equal(response.status, 202, JSON.stringify(response.body));
    return response.body;
  }

  /** What the workflow does when a job ends (no workflow runs here): its terminal state, its GPUs released. */
  async function end(jobId: string) {
    const job = (await w.store.getJob(jobId))!;
    assert.ok(
      await w.store.finishJob(job, {
        state: JobState.SUCCEEDED,
        stateReason: 'exited with code 0',
        finishedAt: new Date().toISOString(),
      }),
    );
  }

  describe('create and read', () => {
    it("creates a template in the caller's only project, with an id, bookkeeping and a Location", async () => {
      const response = await w.call('POST', '/v1/templates', ALICE, { body: TRAIN });
      assert.equal(response.status, 201, JSON.stringify(response.body));
      const created = response.body;
      assert.match(created.id, /^tpl-[0-9a-z]+$/);
      assert.equal(response.headers.location, `/v1/templates/${created.id}`);
      assert.equal(created.project, 'vision');
      assert.equal(created.public, undefined);
      assert.equal(created.createdBy, 'alice');
      assert.equal(created.createdAt, created.updatedAt);
      assert.deepEqual(
        { gpus: created.gpus, nodeCount: created.nodeCount, env: created.env },
        { gpus: 1, nodeCount: 1, env: {} },
      );

      assert.deepEqual((await w.call('GET', `/v1/templates/${created.id}`, ALICE)).body, created);
      assert.deepEqual((await w.call('GET', '/v1/templates/train', ALICE)).body, created);
    });

    it('takes the project from the body, and refuses a project the caller is not in (403) or a missing one when it has several (400)', async () => {
      assert.equal((await create({ ...TRAIN, project: 'audio' }, CAROL)).project, 'audio');
      expectError(await w.call('POST', '/v1/templates', ALICE, { body: { ...TRAIN, project: 'audio' } }), 403);
      expectError(await w.call('POST', '/v1/templates', CAROL, { body: TRAIN }), 400, ['project']);
      expectError(await w.call('POST', '/v1/templates', ROOT, { body: TRAIN }), 400, ['project']);
      assert.deepEqual(
        (await w.call('GET', '/v1/templates', ROOT)).body.items.map((t: { project: string }) => t.project),
        ['audio'],
      );
    });

    it('refuses a pool or image that does not exist, a version the image lacks, and a bad template, storing nothing', async () => {
      expectError(
        await w.call('POST', '/v1/templates', ALICE, { body: { ...TRAIN, pool: 'h100', image: 'nope' } }),
        400,
        ['image', 'pool'],
      );
      expectError(await w.call('POST', '/v1/templates', ALICE, { body: { ...TRAIN, imageVersion: 2 } }), 400, [
        'imageVersion',
      ]);
      expectError(
        await w.call('POST', '/v1/templates', ALICE, { body: { ...TRAIN, nodeCount: 2, allowRoot: true } }),
        400,
        ['allowRoot'],
      );
      expectError(await w.call('POST', '/v1/templates', ALICE, { body: { ...TRAIN, name: 'tpl-x' } }), 400, ['name']);
      expectError(
        await w.call('POST', '/v1/templates', ALICE, { body: { ...TRAIN, defaultLiveTimeoutMinutes: 121 } }),
        400,
        ['defaultLiveTimeoutMinutes'],
      );
      expectError(
        await w.call('POST', '/v1/templates', ALICE, { body: { ...TRAIN, command: 'rm -rf /', privileged: true } }),
        400,
        ['command', 'privileged'],
      );
      expectError(
        await w.call('POST', '/v1/templates', ALICE, {
          body: { ...TRAIN, sshPublicKey: 'ssh-ed25519 AAAA\nrm -rf /' },
        }),
        400,
        ['sshPublicKey'],
      );
      expectError(
        await w.call('POST', '/v1/templates', ROOT, { body: { ...TRAIN, project: 'vision', public: true } }),
        400,
        ['public'],
      );
      assert.deepEqual((await w.call('GET', '/v1/templates', ROOT)).body.items, []);
    });
  });

  describe('access', () => {
    it("is a 404 for another project's template, by id or name, to read, change or delete", async () => {
      const theirs = await create({ ...TRAIN, name: 'speech' }, BOB);
      for (const ref of [theirs.id, 'speech']) {
        expectError(await w.call('GET', `/v1/templates/${ref}`, ALICE), 404);
        expectError(await w.call('PATCH', `/v1/templates/${ref}`, ALICE, { body: { gpus: 2 } }), 404);
        expectError(await w.call('DELETE', `/v1/templates/${ref}`, ALICE), 404);
      }
      expectError(await w.call('GET', '/v1/templates/speech', ALICE, { query: { project: 'audio' } }), 404);
      const unchanged = (await w.call('GET', `/v1/templates/${theirs.id}`, BOB)).body;
      assert.deepEqual(unchanged, theirs);
    });

    it('lets admins write public templates, anyone signed in read them, and members write them never (403)', async () => {
      const shared = await create({ ...TRAIN, name: 'shared', public: true }, ROOT);
      assert.equal(shared.public, true);
      assert.equal(shared.project, undefined);
      for (const who of [ALICE, BOB, DAVE]) {
        assert.equal((await w.call('GET', `/v1/templates/${shared.id}`, who)).status, 200);
        assert.equal((await w.call('GET', '/v1/templates/shared', who)).status, 200);
      }
      expectError(
        await w.call('POST', '/v1/templates', ALICE, { body: { ...TRAIN, name: 'mine', public: true } }),
        403,
      );
      expectError(await w.call('PATCH', '/v1/templates/shared', ALICE, { body: { gpus: 2 } }), 403);
      expectError(await w.call('DELETE', `/v1/templates/${shared.id}`, BOB), 403);
      assert.equal((await w.call('PATCH', '/v1/templates/shared', ROOT, { body: { gpus: 2 } })).body.gpus, 2);
      assert.equal((await w.call('DELETE', '/v1/templates/shared', ROOT)).status, 204);
    });

    it("lets members of the project and admins change and delete the project's templates", async () => {
      const created = await create(TRAIN);
      const byMember = await w.call('PATCH', `/v1/templates/${created.id}`, CAROL, { body: { gpus: 2 } });
      assert.equal(byMember.status, 200, JSON.stringify(byMember.body));
      const byAdmin = await w.call('PATCH', '/v1/templates/train', ROOT, { body: { env: { SEED: '1' } } });
      assert.equal(byAdmin.status, 200, JSON.stringify(byAdmin.body));
      assert.deepEqual(
        { gpus: byAdmin.body.gpus, env: byAdmin.body.env, revision: byAdmin.body.revision },
        { gpus: 2, env: { SEED: '1' }, revision: 3 },
      );
      assert.equal((await w.call('DELETE', '/v1/templates/train', ROOT)).status, 204);
      expectError(await w.call('GET', `/v1/templates/${created.id}`, ALICE), 404);
    });

    it("lists a member's projects' and the public templates, an admin all, and ?project= that project's", async () => {
      await create({ ...TRAIN, name: 'a' }, ALICE);
      await create({ ...TRAIN, name: 'b' }, BOB);
      await create({ ...TRAIN, name: 'p', public: true }, ROOT);
      const names = async (as: typeof ALICE, query?: Record<string, string>) =>
        (await w.call('GET', '/v1/templates', as, { query })).body.items.map((t: { name: string }) => t.name);
      assert.deepEqual(await names(ALICE), ['p', 'a']);
      assert.deepEqual(await names(BOB), ['p', 'b']);
      assert.deepEqual(await names(DAVE), ['p']);
      assert.deepEqual(await names(ROOT), ['p', 'b', 'a']); // public first, then by project (audio, vision)
      assert.deepEqual(await names(CAROL, { project: 'audio' }), ['b']);
      assert.deepEqual(await names(ALICE, { project: 'audio' }), []);
    });
  });

  describe('names', () => {
    it('are unique per owner: a second one in the project is a 409, the same name elsewhere is fine', async () => {
      await create(TRAIN, ALICE);
      expectError(await w.call('POST', '/v1/templates', CAROL, { body: { ...TRAIN, project: 'vision' } }), 409);
      await create(TRAIN, BOB);
      await create({ ...TRAIN, public: true }, ROOT);
      expectError(await w.call('POST', '/v1/templates', ROOT, { body: { ...TRAIN, public: true } }), 409);
      assert.equal((await w.call('GET', '/v1/templates', ROOT)).body.items.length, 3);
    });

    it('resolve among the caller’s projects first, then public; ambiguous across projects asks for ?project= (400)', async () => {
      const vision = await create(TRAIN, ALICE);
      const audio = await create(TRAIN, BOB);
      const shared = await create({ ...TRAIN, name: 'shared', public: true }, ROOT);
      assert.equal((await w.call('GET', '/v1/templates/train', ALICE)).body.id, vision.id);
      assert.equal((await w.call('GET', '/v1/templates/train', BOB)).body.id, audio.id);
      assert.equal((await w.call('GET', '/v1/templates/shared', CAROL)).body.id, shared.id);
      expectError(await w.call('GET', '/v1/templates/train', CAROL), 400, ['project']);
      expectError(await w.call('GET', '/v1/templates/train', ROOT), 400, ['project']);
      assert.equal(
        (await w.call('GET', '/v1/templates/train', CAROL, { query: { project: 'audio' } })).body.id,
        audio.id,
      );
      assert.equal(
        (await w.call('DELETE', '/v1/templates/train', CAROL, { query: { project: 'vision' } })).status,
        204,
      );
      assert.equal((await w.call('GET', '/v1/templates/train', CAROL)).body.id, audio.id);
    });

    it('move on rename: the new name must be free, the old one is free afterwards', async () => {
      const first = await create(TRAIN);
      await create({ ...TRAIN, name: 'eval' });
      expectError(await w.call('PATCH', '/v1/templates/train', ALICE, { body: { name: 'eval' } }), 409);
      const renamed = await w.call('PATCH', '/v1/templates/train', ALICE, { body: { name: 'train-v2' } });
      assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
      assert.equal(renamed.body.id, first.id);
      assert.equal((await w.call('GET', '/v1/templates/train-v2', ALICE)).body.id, first.id);
      expectError(await w.call('GET', '/v1/templates/train', ALICE), 404);
      assert.notEqual((await create(TRAIN)).id, first.id);
    });
  });

  describe('PATCH', () => {
    it('re-checks the merged template whole, keeps the owner fixed, and removes optional fields given null', async () => {
      await create({ ...TRAIN, allowRoot: true, volumeSizeGb: 100 });
      expectError(await w.call('PATCH', '/v1/templates/train', ALICE, { body: { nodeCount: 2 } }), 400, ['allowRoot']);
      expectError(
        await w.call('PATCH', '/v1/templates/train', ALICE, { body: { project: 'audio', public: true } }),
        400,
        ['project', 'public'],
      );
      expectError(await w.call('PATCH', '/v1/templates/train', ALICE, { body: { pool: 'h100' } }), 400, ['pool']);
      expectError(
        await w.call('PATCH', '/v1/templates/train', ALICE, {
          body: { maxLiveTimeoutMinutes: 30, defaultLiveTimeoutMinutes: 45 },
        }),
        400,
        ['defaultLiveTimeoutMinutes'],
      );
      const changed = await w.call('PATCH', '/v1/templates/train', ALICE, {
        body: { nodeCount: 2, allowRoot: null, volumeSizeGb: null },
      });
      assert.equal(changed.status, 200, JSON.stringify(changed.body));
      assert.equal(changed.body.nodeCount, 2);
      assert.equal('allowRoot' in changed.body, false);
      assert.equal('volumeSizeGb' in changed.body, false);
      assert.equal(changed.body.project, 'vision');
      assert.deepEqual((await w.call('GET', '/v1/templates/train', ALICE)).body, changed.body);
    });
  });

  describe('the templates quota', () => {
    it('refuses a project template past the limit (429, nothing stored), gives one back on delete, and does not count public ones', async () => {
      await w.store.putQuota({ project: 'vision', resource: 'templates', hardLimit: 2 });
      await create({ ...TRAIN, name: 'one' });
      const two = await create({ ...TRAIN, name: 'two' });
      expectError(await w.call('POST', '/v1/templates', ALICE, { body: { ...TRAIN, name: 'three' } }), 429);
      expectError(await w.call('GET', '/v1/templates/three', ALICE), 404);
      assert.equal((await w.store.getQuota('vision', 'templates'))?.used, 2);

      await create({ ...TRAIN, name: 'shared', public: true }, ROOT);
      await create({ ...TRAIN, name: 'three' }, BOB); // another project's count
      assert.equal((await w.store.getQuota('vision', 'templates'))?.used, 2);

      assert.equal((await w.call('DELETE', `/v1/templates/${two.id}`, ALICE)).status, 204);
      assert.equal((await w.store.getQuota('vision', 'templates'))?.used, 1);
      await create({ ...TRAIN, name: 'three' });
      assert.equal((await w.store.getQuota('vision', 'templates'))?.used, 2);
    });
  });

  describe('DELETE while jobs use the template', () => {
    it('is a 409 naming how many active jobs use it, leaves it usable, and succeeds once they ended', async () => {
      const created = await create(TRAIN);
      const first = await submit({ template: 'train' });
      const second = await submit({ template: created.id });
      const refused = await w.call('DELETE', '/v1/templates/train', ALICE);
      expectError(refused, 409);
      assert.match(refused.body.error.message, /2 active jobs/);

      // The delete's mark is gone: jobs and changes go through again.
      const third = await submit({ template: 'train' });
      assert.equal((await w.call('PATCH', '/v1/templates/train', ALICE, { body: { gpus: 2 } })).status, 200);

      for (const job of [first, second]) await end(job.id);
      expectError(await w.call('DELETE', '/v1/templates/train', ALICE), 409);
      await end(third.id);
      assert.equal((await w.call('DELETE', '/v1/templates/train', ALICE)).status, 204);
      expectError(await w.call('GET', `/v1/templates/${created.id}`, ALICE), 404);
    });

    it('stores no job against a template while a delete holds its mark, and refuses a second delete meanwhile', async () => {
      const created = await create(TRAIN);
      const now = new Date();
      const until = new Date(now.getTime() + 60_000).toISOString();
      assert.equal((await w.catalog.markTemplateDeleting(created.id, until, now.toISOString()))?.id, created.id);

      expectError(await w.call('POST', '/v1/jobs', ALICE, { body: { template: 'train' } }), 409);
      assert.deepEqual(await w.store.listActiveJobs(), []);
      assert.deepEqual(w.started, []);
      expectError(await w.call('DELETE', '/v1/templates/train', ALICE), 409);
      expectError(await w.call('PATCH', '/v1/templates/train', ALICE, { body: { gpus: 2 } }), 409);

      await w.catalog.clearTemplateDeleting(created.id, until);
      await submit({ template: 'train' });
    });

    it('lets a new delete take over a mark whose holder ran out of time (a delete that crashed midway)', async () => {
      const created = await create(TRAIN);
      const then = new Date(Date.now() - 10 * 60_000);
      await w.catalog.markTemplateDeleting(
        created.id,
        new Date(then.getTime() + 60_000).toISOString(),
        then.toISOString(),
      );
      await end((await submit({ template: 'train' })).id);
      assert.equal((await w.call('DELETE', '/v1/templates/train', ALICE)).status, 204);
    });
  });

  describe('jobs name templates', () => {
    it("resolve a name to the project's template before a public one, record templateId and the max, and refuse another project's id", async () => {
      const shared = await create({ ...TRAIN, name: 'shared', public: true, maxLiveTimeoutMinutes: 30 }, ROOT);
      const own = await create({ ...TRAIN, name: 'shared', maxLiveTimeoutMinutes: 90 });
      const theirs = await create({ ...TRAIN, name: 'speech' }, BOB);

      const mine = await submit({ template: 'shared' });
      assert.deepEqual(
        { templateId: mine.templateId, max: mine.maxLiveTimeoutMinutes, project: mine.project },
        { templateId: own.id, max: 90, project: 'vision' },
      );
      const viaPublic = await submit({ template: 'shared' }, BOB);
      assert.deepEqual(
        { templateId: viaPublic.templateId, max: viaPublic.maxLiveTimeoutMinutes },
        { templateId: shared.id, max: 30 },
      );
      assert.equal((await submit({ template: shared.id })).templateId, shared.id);

      expectError(await w.call('POST', '/v1/jobs', ALICE, { body: { template: theirs.id } }), 400, ['template']);
      expectError(await w.call('POST', '/v1/jobs', ALICE, { body: { template: 'speech' } }), 400, ['template']);
      expectError(await w.call('POST', '/v1/jobs', ALICE, { body: { template: 'nope' } }), 400, ['template']);
    });

    it("let a caller with several projects name a project's template and get its project, but ask for the project otherwise", async () => {
      await create(TRAIN, ALICE);
      await create({ ...TRAIN, name: 'shared', public: true }, ROOT);
      assert.equal((await submit({ template: 'train' }, CAROL)).project, 'vision');
      expectError(await w.call('POST', '/v1/jobs', CAROL, { body: { template: 'shared' } }), 400, ['project']);
      assert.equal((await submit({ template: 'shared', project: 'audio' }, CAROL)).project, 'audio');
      expectError(await w.call('POST', '/v1/jobs', CAROL, { body: { template: 'train', project: 'audio' } }), 400, [
        'template',
      ]);
    });
  });

  describe('pagination', () => {
    it('walks every template once across pages', async () => {
      const names = ['a1', 'a2', 'a3', 'a4', 'a5'];
      for (const name of names) await create({ ...TRAIN, name });
      const seen: string[] = [];
      let nextToken: string | undefined;
      let pages = 0;
      do {
        const page = await w.call('GET', '/v1/templates', ALICE, {
          query: { limit: '2', ...(nextToken ? { nextToken } : {}) },
        });
        assert.equal(page.status, 200, JSON.stringify(page.body));
        assert.ok(page.body.items.length <= 2);
        seen.push(...page.body.items.map((t: { name: string }) => t.name));
        nextToken = page.body.nextToken;
        pages++;
      } while (nextToken);
      assert.deepEqual(seen, names);
      assert.equal(pages, 3);
      expectError(await w.call('GET', '/v1/templates', ALICE, { query: { limit: '0' } }), 400, ['limit']);
    });
  });

  describe('config seeding', () => {
    it('is idempotent across restarts: the same owner and name is changed in place, keeping its id', async () => {
      const seeding = {
        queue: w.deps.queue,
        limits: w.deps.limits,
        catalog: w.catalog,
        now: () => new Date(),
        newId: () => `j-${Math.random().toString(36).slice(2, 10)}`,
      };
      const first = await seedTemplate(seeding, template({ name: 'seeded' }));
      const again = await seedTemplate(seeding, template({ name: 'seeded' }));
      assert.deepEqual(again, first);
      const changed = await seedTemplate(seeding, template({ name: 'seeded', command: ['echo', 'hi'] }));
      assert.equal(changed.id, first.id);
      assert.deepEqual((await w.call('GET', '/v1/templates/seeded', ALICE)).body.command, ['echo', 'hi']);
      assert.equal((await w.store.getQuota('vision', 'templates'))?.used, 1);
      assert.equal((await w.call('GET', '/v1/templates', ROOT)).body.items.length, 1);
    });
  });

  describe('resolving a name', () => {
    let watch: ReturnType<typeof watchRequests>;
    before(() => {
      watch = watchRequests(dynamo().client);
    });
    /** The template reads of `act`. */
    async function readsOf(act: () => Promise<unknown>): Promise<string[][]> {
      watch.sent.length = 0;
      await act();
      return templateReads(watch.sent);
    }

    it("costs a job one consistent request for its project's claim and the public one, the project's winning", async () => {
      const shared = await create({ ...TRAIN, name: 'shared', public: true, maxLiveTimeoutMinutes: 30 }, ROOT);
      const own = await create({ ...TRAIN, name: 'shared', maxLiveTimeoutMinutes: 90 });

      assert.deepEqual(
        await readsOf(async () => assert.equal((await submit({ template: 'shared' })).templateId, own.id)),
        [['vision#shared', '_public#shared']],
      );
      assert.deepEqual(
        await readsOf(async () => assert.equal((await submit({ template: 'shared' }, BOB)).templateId, shared.id)),
        [['audio#shared', '_public#shared']],
      );
      assert.deepEqual(
        await readsOf(async () =>
          expectError(await w.call('POST', '/v1/jobs', ALICE, { body: { template: 'nope' } }), 400, ['template']),
        ),
        [['vision#nope', '_public#nope']],
      );
      assert.deepEqual(
        await readsOf(async () => assert.equal((await w.call('GET', '/v1/templates/shared', ALICE)).body.id, own.id)),
        [['vision#shared']],
      );
    });

    it("asks again for a claim DynamoDB leaves unprocessed, and the project's still wins over a public one answered first", async () => {
      await create({ ...TRAIN, name: 'shared', public: true }, ROOT);
      const own = await create({ ...TRAIN, name: 'shared' });
      watch.defer.add('vision#shared');

      const reads = await readsOf(async () => assert.equal((await submit({ template: 'shared' })).templateId, own.id));

      assert.deepEqual(reads, [['vision#shared', '_public#shared'], ['vision#shared']]);
    });

    it('sees every update, rename and delete at once: the claim carries the template as its item has it', async () => {
      const shared = await create({ ...TRAIN, public: true }, ROOT);
      const created = await create(TRAIN);
      const lookup = (name: string) => w.catalog.findTemplateIn(['vision', undefined], name);
      assert.deepEqual(await lookup('train'), await w.catalog.getTemplate(created.id));

      assert.equal(
        (await w.call('PATCH', '/v1/templates/train', ALICE, { body: { gpus: 2, env: { SEED: '7' } } })).status,
        200,
      );
      const updated = await lookup('train');
      assert.deepEqual(updated, await w.catalog.getTemplate(created.id));
      assert.deepEqual(
        { gpus: updated?.gpus, env: updated?.env, revision: updated?.revision },
        { gpus: 2, env: { SEED: '7' }, revision: 2 },
      );

      assert.equal((await w.call('PATCH', '/v1/templates/train', ALICE, { body: { name: 'train-v2' } })).status, 200);
      assert.equal((await lookup('train'))?.id, shared.id);
      assert.deepEqual(await lookup('train-v2'), await w.catalog.getTemplate(created.id));
      assert.equal((await lookup('train-v2'))?.revision, 3);

      assert.equal((await w.call('DELETE', '/v1/templates/train-v2', ALICE)).status, 204);
      assert.equal(await lookup('train-v2'), undefined);
      assert.equal((await submit({ template: 'train' })).templateId, shared.id);
    });

    it('resolves a claim written before claims carried the template by reading the template, and its next change adds the copy', async () => {
      const created = await create(TRAIN);
      const legacyClaim = (key: string, templateId: string) =>
        dynamo().doc.send(
          new PutCommand({ TableName: w.tables.catalog, Item: { kind: 'template-name', name: key, templateId } }),
        );
      await legacyClaim('vision#train', created.id);

      assert.deepEqual(
        await readsOf(async () => assert.equal((await submit({ template: 'train' })).templateId, created.id)),
        [['vision#train', '_public#train'], [created.id]],
      );
      assert.equal((await w.call('PATCH', '/v1/templates/train', ALICE, { body: { gpus: 2 } })).status, 200);
      assert.deepEqual(
        await readsOf(async () => assert.equal((await w.catalog.findTemplate('vision', 'train'))?.gpus, 2)),
        [['vision#train']],
      );

      // Its template deleted between the two reads: as if there were no claim, so the public template of the name is the job's.
      const ghost = await create({ ...TRAIN, name: 'ghost', public: true }, ROOT);
      await legacyClaim('vision#ghost', 'tpl-gone');
      assert.equal((await submit({ template: 'ghost' })).templateId, ghost.id);
    });
  });
});
