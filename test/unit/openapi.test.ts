/**
 * GET /v1/openapi.json: served without a token, and built from the very
 * schemas the routes validate with — checked by sending the API what the
 * document says and what it forbids.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { APIGatewayProxyEventV2WithJWTAuthorizer, Context } from 'aws-lambda';
import { z } from 'zod';
import type { Deps } from '../../lambdas/core/deps.js';
import { JOB_STATES } from '../../lambdas/core/job.js';
import { SubmitJobInput } from '../../lambdas/core/job-schemas.js';
import * as views from '../../lambdas/core/views.js';
import { apiRoutes, createApiHandler, DEFAULT_MAX_BODY_BYTES } from '../../lambdas/handlers/http/api.js';
import { startHttpServer } from '../../lambdas/local/http-server.js';

type Event = APIGatewayProxyEventV2WithJWTAuthorizer;
type Doc = {
  openapi: string;
  info: { description: string };
  servers: Array<{ url: string }>;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema>; securitySchemes: Record<string, unknown> };
};
type Operation = {
  operationId: string;
  security: unknown[];
  parameters?: Array<{ name: string; in: string; required: boolean; schema: Schema }>;
  requestBody?: { description?: string; content: { 'application/json': { schema: Schema } } };
  responses: Record<
    string,
    {
      description?: string;
      content?: { 'application/json': { schema: Schema } };
      headers?: Record<string, { required: boolean }>;
    }
  >;
};
type Schema = {
  $ref?: string;
  type?: string;
  enum?: string[];
  items?: Schema;
  properties?: Record<string, Schema>;
  additionalProperties?: unknown;
  maximum?: number;
  maxItems?: number;
  maxProperties?: number;
  minProperties?: number;
  propertyNames?: { pattern?: string; not?: { enum?: string[] } };
  description?: string;
  required?: string[];
};

const noDeps = (): Deps => {
  throw new Error('the OpenAPI route must not need the store');
};

async function fetchDocument(
  change: (event: Event) => void = () => undefined,
): Promise<{ statusCode: number; doc: Doc }> {
  const event: Event = JSON.parse(
    readFileSync(new URL('../fixtures/http/public-get-root.json', import.meta.url), 'utf8'),
  );
  change(event);
  event.rawPath = '/v1/openapi.json';
  event.requestContext.http.path = '/v1/openapi.json';
  event.routeKey = 'GET /v1/openapi.json';
  const response = await createApiHandler(noDeps)(event, {} as Context);
  return { statusCode: response.statusCode!, doc: JSON.parse(response.body!) };
}

function resolve(doc: Doc, schema: Schema): Schema {
  return schema.$ref ? doc.components.schemas[schema.$ref.replace('#/components/schemas/', '')] : schema;
}

describe('GET /v1/openapi.json', () => {
  it('is served without a token as an OpenAPI 3.1 document', async () => {
    const { statusCode, doc } = await fetchDocument();
    assert.equal(statusCode, 200);
    assert.equal(doc.openapi, '3.1.0');
    assert.ok(doc.components.securitySchemes.bearer);
  });

  it('describes every route the API serves, with its access', async () => {
    const { doc } = await fetchDocument();
    const routes = apiRoutes(noDeps);
    for (const route of routes) {
      // A greedy `{path+}` is documented as `{path}`: OpenAPI has no such parameter.
      const operation = doc.paths[route.path.replace('+}', '}')]?.[route.method.toLowerCase()];
      assert.ok(operation, `${route.method} ${route.path} is missing from the document`);
      assert.deepEqual(
        operation.security.length === 0,
        Boolean(route.public),
        `${route.method} ${route.path}: security`,
      );
      if (!route.public) assert.ok(operation.responses['401'], `${route.method} ${route.path} documents 401`);
    }
    const operations = Object.values(doc.paths).flatMap((p) => Object.values(p));
    assert.equal(operations.length, routes.length, 'no operation without a route');
    assert.equal(new Set(operations.map((o) => o.operationId)).size, operations.length, 'operation ids are unique');
  });

  it('gives POST /v1/jobs the submit schema itself: its fields, and nothing else allowed', async () => {
    const { doc } = await fetchDocument();
    const body = resolve(doc, doc.paths['/v1/jobs'].post.requestBody!.content['application/json'].schema);
    assert.deepEqual(Object.keys(body.properties!).sort(), [
      'array',
      'command',
      'env',
      'gpus',
      'liveTimeoutMinutes',
      'name',
      'project',
      'secrets',
      'template',
    ]);
    assert.deepEqual(body.required, ['template']);
    assert.equal(body.additionalProperties, false);
    assert.equal(body.properties!.command.maxItems, 256, 'the argv bound the API enforces');
  });

  it('documents path and query parameters as the routes check them', async () => {
    const { doc } = await fetchDocument();
    const list = doc.paths['/v1/jobs'].get.parameters!;
    const limit = list.find((p) => p.name === 'limit');
    assert.equal(limit?.in, 'query');
    assert.equal(limit?.schema.maximum, 1000);
    assert.ok(list.some((p) => p.name === 'state' && p.in === 'query'));
    const byId = doc.paths['/v1/jobs/{id}'].get.parameters!;
    assert.deepEqual(
      byId.map((p) => [p.name, p.in, p.required]),
      [['id', 'path', true]],
    );
  });

  it('documents what POST /v1/jobs answers: 202, the Job component and its Location', async () => {
    const { doc } = await fetchDocument();
    const accepted = doc.paths['/v1/jobs'].post.responses['202'];
    assert.deepEqual(accepted.content?.['application/json'].schema, {
      anyOf: [{ $ref: '#/components/schemas/Job' }, { $ref: '#/components/schemas/JobArray' }],
    });
    assert.equal(accepted.headers?.Location.required, true);
    const job = doc.components.schemas.Job;
    assert.equal(job.additionalProperties, false, 'no field beyond those described');
    assert.deepEqual(job.properties!.state.enum, JOB_STATES);
    for (const field of ['id', 'project', 'state', 'createdAt'])
      assert.ok(job.required?.includes(field), `${field} is always there`);
    for (const field of ['queuePosition', 'expiresAt', 'exitCode'])
      assert.ok(job.properties![field] && !job.required?.includes(field), `${field} is described and optional`);
  });

  it('documents lists as pages of a component, and a 204 without a body', async () => {
    const { doc } = await fetchDocument();
    const list = doc.paths['/v1/jobs'].get.responses['200'].content!['application/json'].schema;
    assert.deepEqual(list.required, ['items']);
    assert.deepEqual(list.properties!.items.items, { $ref: '#/components/schemas/Job' });
    assert.equal(list.properties!.nextToken.type, 'string');
    const removed = doc.paths['/v1/jobs/{id}'].delete.responses;
    assert.ok(removed['202'].content);
    assert.equal(removed['204'].content, undefined);
  });

  it('has every view among its components', async () => {
    const { doc } = await fetchDocument();
    const ids = Object.values(views).flatMap((view) => {
      const id =
        view instanceof z.ZodType ? (z.globalRegistry.get(view) as { id?: string } | undefined)?.id : undefined;
      return id ? [id] : [];
    });
    assert.deepEqual(ids.sort(), [
      'Health',
      'Image',
      'ImageVersion',
      'Job',
      'JobArray',
      'JobLogs',
      'JobOutputs',
      'OpenApiDocument',
      'Pool',
      'PoolHistory',
      'Quota',
      'Stats',
      'StatsFigures',
      'Template',
      'V1',
      'Versions',
    ]);
    for (const id of ids) assert.ok(doc.components.schemas[id], `${id} is a component`);
  });

  it('documents the conflict, impossible and quota answers where routes give them', async () => {
    const { doc } = await fetchDocument();
    const statuses = (path: string, method: string) => Object.keys(doc.paths[path][method].responses);
    for (const status of ['202', '400', '401', '409', '413', '422', '429'])
      assert.ok(statuses('/v1/jobs', 'post').includes(status), `POST /v1/jobs documents ${status}`);
    assert.ok(statuses('/v1/templates/{id}', 'delete').includes('409'), 'deleting a template in use');
    assert.ok(statuses('/v1/templates', 'post').includes('429'), 'the templates quota');
    assert.ok(!statuses('/v1/pools', 'get').includes('429'), 'a read never answers 429');
    for (const status of ['409', '422', '429']) {
      const description = (doc.paths['/v1/jobs'].post.responses[status] as { description?: string }).description;
      assert.ok(description && description.length > 10, `${status} is described`);
    }
  });

  it('documents 503 with Retry-After on every route that reads the store, and not on the public ones', async () => {
    const { doc } = await fetchDocument();
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(methods)) {
        const unavailable = operation.responses['503'];
        if (path === '/v1/health') continue; // its own 503: a degraded component
        if (operation.security.length === 0)
          assert.equal(unavailable, undefined, `${method} ${path} is public and reads no store`);
        else
          assert.equal(
            unavailable?.headers?.['retry-after']?.required,
            true,
            `${method} ${path} documents 503 with Retry-After`,
          );
      }
    }
  });

  it('names the server it was reached at: the API Gateway origin (and a stage other than $default), else "/"', async () => {
    assert.deepEqual((await fetchDocument()).doc.servers, [
      { url: 'https://abc123.execute-api.eu-west-1.amazonaws.com' },
    ]);
    const staged = await fetchDocument((e) => void (e.requestContext.stage = 'prod'));
    assert.deepEqual(staged.doc.servers, [{ url: 'https://abc123.execute-api.eu-west-1.amazonaws.com/prod' }]);
    const unknown = await fetchDocument((e) => void delete e.headers['x-forwarded-proto']);
    assert.deepEqual(unknown.doc.servers, [{ url: '/' }]);
  });

  it("names the local server's own origin when served by it", async () => {
    const server = await startHttpServer({ host: '127.0.0.1', port: 0, users: [], handler: createApiHandler(noDeps) });
    try {
      const doc = (await (await fetch(`${server.url}/v1/openapi.json`)).json()) as Doc;
      assert.deepEqual(doc.servers, [{ url: server.url }]);
    } finally {
      await server.close();
    }
  });

  it('documents the limits the API enforces: 64 env vars and no reserved names, the body size, cross-field rules', async () => {
    const { doc } = await fetchDocument();
    const submit = resolve(doc, doc.paths['/v1/jobs'].post.requestBody!.content['application/json'].schema);
    const template = resolve(doc, doc.paths['/v1/templates'].post.requestBody!.content['application/json'].schema);
    for (const env of [submit.properties!.env, template.properties!.env]) {
      assert.equal(env.maxProperties, 64);
      assert.deepEqual(env.propertyNames?.not?.enum, ['__proto__', 'constructor', 'prototype']);
    }
    assert.match(submit.properties!.gpus.description!, /maxGpus.*422/);
    assert.match(submit.properties!.liveTimeoutMinutes.description!, /at most the template's maxLiveTimeoutMinutes/);
    assert.match(template.properties!.defaultLiveTimeoutMinutes.description!, /at most maxLiveTimeoutMinutes/);
    assert.match(template.properties!.public.description!, /Not with project/);
    const patchJob = resolve(doc, doc.paths['/v1/jobs/{id}'].patch.requestBody!.content['application/json'].schema);
    const patchPool = resolve(doc, doc.paths['/v1/pools/{name}'].patch.requestBody!.content['application/json'].schema);
    assert.equal(patchJob.minProperties, 1, 'name or liveTimeoutMinutes');
    assert.equal(patchPool.minProperties, 1, 'maxGpus or backfill');

    const size = `${DEFAULT_MAX_BODY_BYTES} bytes`;
    assert.ok(doc.info.description.includes(size), doc.info.description);
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(methods)) {
        if (!operation.requestBody) continue;
        assert.ok(operation.requestBody.description?.includes(size), `${method} ${path}: the body limit`);
        assert.ok(operation.responses['413']?.description?.includes(size), `${method} ${path}: its 413`);
      }
    }
  });

  it('enforces the env limit it documents: 64 variables are valid, 65 are a 400 naming env', async () => {
    const submit = async (count: number) => {
      const event: Event = JSON.parse(
        readFileSync(new URL('../fixtures/http/member-submit-job.json', import.meta.url), 'utf8'),
      );
      event.body = JSON.stringify({
        template: 'train',
        env: Object.fromEntries(Array.from({ length: count }, (_, i) => [`V${i}`, 'x'])),
      });
      event.isBase64Encoded = false;
      const response = await createApiHandler(noDeps)(event, {} as Context);
      return { status: response.statusCode, body: JSON.parse(response.body ?? '{}') };
    };
    const over = await submit(65);
    assert.equal(over.status, 400);
    assert.deepEqual(
      over.body.error.details.map((d: { field: string }) => d.field),
      ['env'],
    );
    const env = (count: number) => Object.fromEntries(Array.from({ length: count }, (_, i) => [`V${i}`, 'x']));
    assert.equal(SubmitJobInput.safeParse({ template: 'train', env: env(64) }).success, true, '64 are valid');
  });

  it('resolves every $ref to a component', async () => {
    const { doc } = await fetchDocument();
    const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? [];
    assert.ok(refs.length > 0);
    for (const ref of refs) {
      const name = ref.slice('"$ref":"#/components/schemas/'.length, -1);
      assert.ok(doc.components.schemas[name], `${ref} resolves`);
    }
  });
});
