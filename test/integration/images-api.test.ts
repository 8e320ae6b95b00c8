/**
 * `/v1/images` through the API Lambda on DynamoDB Local: admins add versions,
 * nothing is overwritten, the same version again changes nothing, references
 * without a digest (or that could pass for a flag) are refused, and jobs run
 * their template's pinned version or the latest one, by digest.
 */
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { seedImages } from '../../lambdas/core/images.js';
import { apiWorld, caller, dynamoPerFile, type ApiWorld } from '../support/harness.js';
import { expectError } from '../support/api-errors.js';

const ALICE = caller('alice', 'vision');
const DAVE = caller('dave');
const ROOT = caller('root', 'admin');

const digest = (c: string) => `sha256:${c.repeat(64)}`;
const CUDA = { name: 'cuda', reference: 'nvidia/cuda:12.4.1-base-ubuntu22.04', digest: digest('a') };

describe('images API', () => {
  const dynamo = dynamoPerFile();
  let w: ApiWorld;
  beforeEach(async () => {
    w = await apiWorld(dynamo(), { images: [] });
  });

  const add = (body: unknown, as = ROOT) => w.call('POST', '/v1/images', as, { body });

  it('lets an admin create an image (201), which anyone signed in reads', async () => {
    const created = await add(CUDA);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.headers.location, '/v1/images/cuda');
    assert.equal(created.body.name, 'cuda');
    assert.equal(created.body.versions.length, 1);
    const [v1] = created.body.versions;
    assert.deepEqual(
      { version: v1.version, reference: v1.reference, digest: v1.digest, addedBy: v1.addedBy },
      { version: 1, reference: CUDA.reference, digest: CUDA.digest, addedBy: 'root' },
    );
    assert.ok(!Number.isNaN(Date.parse(v1.addedAt)));
    for (const who of [ALICE, DAVE, ROOT])
      assert.deepEqual((await w.call('GET', '/v1/images/cuda', who)).body, created.body);
    assert.deepEqual((await w.call('GET', '/v1/images', ALICE)).body, { items: [created.body] });
  });

  it('refuses (422) an ECR image the job instances may not pull, saying why, and stores nothing; one in their scope is added', async () => {
    w.deps.policy = { ecrRepositories: ['arn:aws:ecr:eu-west-1:123456789012:repository/team/*'] };
    const ecr = (repository: string, host = '123456789012.dkr.ecr.eu-west-1.amazonaws.com') => ({
      name: 'trainer',
      reference: `${host}/${repository}:v1`,
      digest: digest('c'),
    });
    for (const [image, arn] of [
      [ecr('vision/trainer'), 'arn:aws:ecr:eu-west-1:123456789012:repository/vision/trainer'],
      [
        ecr('team/trainer', '210987654321.dkr.ecr.eu-west-1.amazonaws.com'),
        'arn:aws:ecr:eu-west-1:210987654321:repository/team/trainer',
      ],
      [
        ecr('team/trainer', '123456789012.dkr.ecr.us-east-1.amazonaws.com'),
        'arn:aws:ecr:us-east-1:123456789012:repository/team/trainer',
      ],
    ] as const) {
      const refused = await add(image);
      expectError(refused, 422);
      assert.equal(
        refused.body.error.message,
        `reference is in Amazon ECR (${arn}), which the job instances may not pull from; flare:ecrRepositories allows arn:aws:ecr:eu-west-1:123456789012:repository/team/*`,
      );
    }
    expectError(await w.call('GET', '/v1/images/trainer', ROOT), 404);
    assert.equal((await add(ecr('team/trainer'))).status, 201);
    assert.equal((await add(CUDA)).status, 201, 'other registries need no ECR read');
  });

  it('refuses members (403) and stores nothing', async () => {
    expectError(await add(CUDA, ALICE), 403);
    expectError(await w.call('GET', '/v1/images/cuda', ROOT), 404);
  });

  it('appends versions and never overwrites one; the same reference and digest again is a 200 that changes nothing', async () => {
    const first = (await add(CUDA)).body;
    const second = await add({ ...CUDA, digest: digest('b') });
    assert.equal(second.status, 201);
    assert.deepEqual(second.body.versions[0], first.versions[0]);
    assert.deepEqual(
      second.body.versions.map((v: { version: number; digest: string }) => [v.version, v.digest]),
      [
        [1, digest('a')],
        [2, digest('b')],
      ],
    );
    const retag = await add({ ...CUDA, reference: 'nvidia/cuda:latest' });
    assert.equal(retag.status, 201, 'the same digest under another reference is a new version');

    const again = await add(CUDA);
    assert.equal(again.status, 200);
    assert.equal(again.body.versions.length, 3);
    assert.deepEqual((await w.call('GET', '/v1/images/cuda', ALICE)).body, again.body);
  });

  it('keeps every version when admins add at once', async () => {
    const responses = await Promise.all(['1', '2', '3', '4', '5'].map((c) => add({ ...CUDA, digest: digest(c) })));
    assert.deepEqual(
      responses.map((r) => r.status),
      [201, 201, 201, 201, 201],
    );
    const image = (await w.call('GET', '/v1/images/cuda', ALICE)).body;
    assert.deepEqual(
      image.versions.map((v: { version: number }) => v.version),
      [1, 2, 3, 4, 5],
    );
    assert.deepEqual(
      image.versions.map((v: { digest: string }) => v.digest).sort(),
      ['1', '2', '3', '4', '5'].map(digest),
    );
  });

  it('refuses a reference without a sha256 digest, and references that start with - or carry whitespace (400), storing nothing', async () => {
    expectError(await add({ name: 'cuda', reference: CUDA.reference }), 400, ['digest']);
    expectError(await add({ ...CUDA, digest: 'md5:0123' }), 400, ['digest']);
    expectError(await add({ ...CUDA, digest: 'sha256:abc' }), 400, ['digest']);
    expectError(await add({ ...CUDA, reference: `${CUDA.reference}@${CUDA.digest}`, digest: undefined }), 400, [
      'digest',
      'reference',
    ]);
    expectError(await add({ ...CUDA, reference: '--privileged' }), 400, ['reference']);
    expectError(await add({ ...CUDA, reference: 'nvidia/cuda:12 --privileged' }), 400, ['reference']);
    expectError(await add({ ...CUDA, reference: 'nvidia/cuda\n:12' }), 400, ['reference']);
    expectError(await add({ ...CUDA, name: '-cuda', extra: 1 }), 400, ['extra', 'name']);
    expectError(await w.call('GET', '/v1/images/cuda', ROOT), 404);
    assert.deepEqual((await w.call('GET', '/v1/images', ROOT)).body.items, []);
  });

  it('is a 404 for an unknown image', async () => {
    expectError(await w.call('GET', '/v1/images/nope', ALICE), 404);
  });

  it('pages through the catalog, each image once', async () => {
    const names = ['a', 'b', 'c', 'd', 'e'];
    for (const name of names.slice().reverse()) assert.equal((await add({ ...CUDA, name })).status, 201);
    const seen: string[] = [];
    let nextToken: string | undefined;
    let pages = 0;
    do {
      const page = await w.call('GET', '/v1/images', ALICE, {
        query: { limit: '2', ...(nextToken ? { nextToken } : {}) },
      });
      assert.equal(page.status, 200, JSON.stringify(page.body));
      seen.push(...page.body.items.map((i: { name: string }) => i.name));
      nextToken = page.body.nextToken;
      pages++;
    } while (nextToken);
    assert.deepEqual(seen, names);
    assert.equal(pages, 3);
    expectError(await w.call('GET', '/v1/images', ALICE, { query: { nextToken: 'not-a-token' } }), 400, ['nextToken']);
  });

  describe('jobs', () => {
    const TEMPLATE = { pool: 'local', image: 'cuda', command: ['nvidia-smi'] };
    const submit = async (template: string) => {
      const response = await w.call('POST', '/v1/jobs', ALICE, { body: { template } });
      assert.equal(response.status, 202, JSON.stringify(response.body));
      return response.body;
    };

    it("run the image's latest version at submit, or the version their template pins, by digest", async () => {
      await add(CUDA);
      assert.equal(
        (await w.call('POST', '/v1/templates', ALICE, { body: { ...TEMPLATE, name: 'latest' } })).status,
        201,
      );
      assert.equal(
        (await w.call('POST', '/v1/templates', ALICE, { body: { ...TEMPLATE, name: 'pinned', imageVersion: 1 } }))
          .status,
        201,
      );
      expectError(
        await w.call('POST', '/v1/templates', ALICE, { body: { ...TEMPLATE, name: 'future', imageVersion: 2 } }),
        400,
        ['imageVersion'],
      );

      const before = await submit('latest');
      assert.equal(before.image, `${CUDA.reference}@${digest('a')}`);
      await add({ ...CUDA, reference: 'nvidia/cuda:12.5.0-base-ubuntu22.04', digest: digest('b') });

      assert.equal((await submit('latest')).image, `nvidia/cuda:12.5.0-base-ubuntu22.04@${digest('b')}`);
      assert.equal((await submit('pinned')).image, `${CUDA.reference}@${digest('a')}`);
      assert.equal(
        (await w.store.getJob(before.id))?.image,
        `${CUDA.reference}@${digest('a')}`,
        'a stored job keeps what it was given',
      );

      const repinned = await w.call('PATCH', '/v1/templates/pinned', ALICE, { body: { imageVersion: 2 } });
      assert.equal(repinned.status, 200, JSON.stringify(repinned.body));
      assert.equal((await submit('pinned')).image, `nvidia/cuda:12.5.0-base-ubuntu22.04@${digest('b')}`);
      const unpinned = await w.call('PATCH', '/v1/templates/pinned', ALICE, { body: { imageVersion: null } });
      assert.equal('imageVersion' in unpinned.body, false);
    });
  });

  describe('config seeding', () => {
    it('adds a version only when the config says something the catalog does not, across restarts', async () => {
      const seeding = { catalog: w.catalog, now: () => new Date() };
      const versions = async () => (await w.catalog.getImage('cuda'))!.versions.map((v) => v.digest);

      await seedImages(seeding, [CUDA]);
      await seedImages(seeding, [CUDA]);
      assert.deepEqual(await versions(), [digest('a')]);

      await seedImages(seeding, [{ ...CUDA, digest: digest('b') }]);
      await seedImages(seeding, [{ ...CUDA, digest: digest('b') }]);
      assert.deepEqual(await versions(), [digest('a'), digest('b')]);

      // Back to the first digest: it becomes the latest again, as a new version.
      await seedImages(seeding, [CUDA]);
      assert.deepEqual(await versions(), [digest('a'), digest('b'), digest('a')]);

      // Two entries of one image: both are versions, the last the latest; a restart adds nothing.
      await seedImages(seeding, [
        { ...CUDA, digest: digest('b') },
        { ...CUDA, digest: digest('c') },
      ]);
      await seedImages(seeding, [
        { ...CUDA, digest: digest('b') },
        { ...CUDA, digest: digest('c') },
      ]);
      assert.deepEqual(await versions(), [digest('a'), digest('b'), digest('a'), digest('c')]);
      assert.equal((await w.catalog.getImage('cuda'))!.versions.at(-1)!.addedBy, 'config');
    });
  });
});
