/**
 * The one reader of a Lambda's environment (lambdas/handlers/aws-env.ts): what a
 * misconfigured function says when it starts, and what a complete environment gives.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { awsApiOptions } from '../../lambdas/handlers/aws-deps.js';
import { AwsEnv, LambdaMisconfigured, ObservabilityEnv, readEnv } from '../../lambdas/handlers/aws-env.js';

const COMPLETE = {
  JOBS_TABLE: 'jobs',
  QUOTAS_TABLE: 'quotas',
  POOLS_TABLE: 'pools',
  IDEMPOTENCY_TABLE: 'idempotency',
  CATALOG_TABLE: 'catalog',
  EVENT_BUS_NAME: 'bus',
  STATE_MACHINE_ARN: 'arn:aws:states:eu-west-1:123456789012:stateMachine:flare',
  LAUNCH_TEMPLATE_ID: 'lt-0123456789abcdef0',
  SUBNET_IDS: 'subnet-a, subnet-b',
  POOLS: JSON.stringify({ a10g: { instanceTypes: ['g5.xlarge'] } }),
  LOG_GROUP_NAME: '/flare/jobs',
};

describe('readEnv', () => {
  it('names every variable that is not set, as a LambdaMisconfigured', () => {
    const { JOBS_TABLE: _jobs, POOLS: _pools, ...partial } = COMPLETE;
    assert.throws(
      () => readEnv(AwsEnv, partial),
      (error: Error) =>
        error instanceof LambdaMisconfigured &&
        /JOBS_TABLE: is not set/.test(error.message) &&
        /POOLS: is not set/.test(error.message) &&
        !/QUOTAS_TABLE/.test(error.message),
    );
  });

  it('names a malformed variable with the reason', () => {
    assert.throws(() => readEnv(AwsEnv, { ...COMPLETE, POOLS: '{"a10g":' }), /POOLS: must be JSON \{"<pool>"/);
    assert.throws(() => readEnv(AwsEnv, { ...COMPLETE, POOLS: '{"a10g":{}}' }), /POOLS\.a10g\.instanceTypes: /);
    assert.throws(
      () => readEnv(AwsEnv, { ...COMPLETE, DEFAULT_QUOTAS: '{"cpus":1}' }),
      /DEFAULT_QUOTAS\.cpus: unknown field/,
    );
    assert.throws(() => readEnv(AwsEnv, { ...COMPLETE, AGENT_TIMEOUT_SECONDS: '1' }), /AGENT_TIMEOUT_SECONDS: /);
    assert.throws(() => readEnv(ObservabilityEnv, { DEPLOYMENT_NAME: 'two words' }), /DEPLOYMENT_NAME: /);
  });

  it('gives the parsed values of a complete environment', () => {
    const env = readEnv(AwsEnv, COMPLETE);
    assert.deepEqual(env.SUBNET_IDS, ['subnet-a', 'subnet-b']);
    assert.deepEqual(env.POOLS, { a10g: { instanceTypes: ['g5.xlarge'] } });
    assert.equal(env.DEFAULT_QUOTAS, undefined);
    assert.deepEqual(
      readEnv(AwsEnv, { ...COMPLETE, DEFAULT_QUOTAS: '', ECR_REPOSITORIES: '["arn:aws:ecr:*"]' }).ECR_REPOSITORIES,
      ['arn:aws:ecr:*'],
    );
  });
});

describe('awsApiOptions', () => {
  it('takes the claim names the stack sets, and leaves empty ones to the defaults', () => {
    assert.deepEqual(awsApiOptions({ AUTH_ADMIN_GROUP: 'ops', AUTH_GROUPS_CLAIM: 'groups' }), {
      adminGroup: 'ops',
      groupsClaim: 'groups',
    });
    assert.deepEqual(awsApiOptions({ AUTH_ADMIN_GROUP: '' }), {});
  });
});
