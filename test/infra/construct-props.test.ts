/**
 * The constructs' whole-number props go through one check (lib/construct-props.ts):
 * each construct refuses a value out of its range, or a fraction, naming itself,
 * the prop and the range, before it creates anything; a value in range passes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { App, Stack } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import { FlareAlarms } from '../../lib/alarms.js';
import { ComputeEvents } from '../../lib/compute-events.js';
import { integerInRange } from '../../lib/construct-props.js';
import { JobEventStream } from '../../lib/job-event-stream.js';
import { FlareFunction } from '../../lib/lambda-defaults.js';
import { ChatNotifier } from '../../lib/notifier.js';
import { Reconciler } from '../../lib/reconciler.js';

function scope() {
  const stack = new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Props');
  const alarms = new FlareAlarms(stack, 'Alarms');
  return { stack, alarms };
}

describe("constructs' whole-number props", () => {
  it('passes a value in range and refuses one outside it or a fraction, naming the construct and the prop', () => {
    const { stack } = scope();
    assert.equal(integerInRange(stack, 'n', 3, [1, 3]), 3);
    assert.throws(() => integerInRange(stack, 'n', 0, [1, 3]), {
      message: 'Props: n must be an integer from 1 to 3, got 0',
    });
    assert.throws(() => integerInRange(stack, 'n', 1.5, [1, 3], 'MB'), {
      message: 'Props: n must be an integer from 1 to 3 MB, got 1.5',
    });
  });

  it('is what each construct checks its props with', () => {
    const cases: [string, (s: ReturnType<typeof scope>) => unknown, RegExp][] = [
      [
        'reconciler period',
        ({ stack, alarms }) =>
          new Reconciler(stack, 'Reconciler', { entry: 'x.ts', environment: {}, alarms, periodMinutes: 61 }),
        /^Props\/Reconciler: periodMinutes must be an integer from 1 to 60, got 61$/,
      ],
      [
        'compute-events retries',
        ({ stack, alarms }) =>
          new ComputeEvents(stack, 'Events', { entry: 'x.ts', environment: {}, alarms, retryAttempts: -1 }),
        /^Props\/Events: retryAttempts must be an integer from 0 to 185, got -1$/,
      ],
      [
        'stream batch size',
        ({ stack, alarms }) =>
          new JobEventStream(stack, 'Stream', {
            entry: 'x.ts',
            table: new dynamodb.Table(stack, 'T', {
              partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
              stream: dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            }),
            bus: new events.EventBus(stack, 'Bus'),
            alarms,
            batchSize: 0.5,
          }),
        /^Props\/Stream: batchSize must be an integer from 1 to 1000, got 0\.5$/,
      ],
      [
        'notifier receives',
        ({ stack, alarms }) =>
          new ChatNotifier(stack, 'Notifier', {
            entry: 'x.ts',
            channels: [{ id: 'a', type: 'slack', secretName: 'flare/a' }],
            bus: new events.EventBus(stack, 'Bus'),
            idempotencyTable: new dynamodb.Table(stack, 'T', {
              partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
            }),
            alarms,
            maxReceiveCount: 1001,
          }),
        /^Props\/Notifier: maxReceiveCount must be an integer from 1 to 1000, got 1001$/,
      ],
      [
        'function memory',
        ({ stack }) => new FlareFunction(stack, 'Fn', { entry: 'x.ts', description: 'x', memorySize: 64 }),
        /^Props\/Fn: memorySize must be an integer from 128 to 10240 MB, got 64$/,
      ],
    ];
    for (const [what, make, message] of cases) assert.throws(() => make(scope()), { message }, what);
  });
});
