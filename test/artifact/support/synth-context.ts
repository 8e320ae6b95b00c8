/** The CDK context the artifact tests synthesize bin/app.ts with (lib/README.md), on top of cdk.json's. */

/** The chat channel's webhook secret; the AWS fake holds its value. */
export const WEBHOOK_SECRET_NAME = 'flare/ops-webhook';
export const CHANNEL_ID = 'ops';
/** The states the channel's rule lets through: a RUNNING event must not reach the webhook. */
export const CHANNEL_STATES = ['SUCCEEDED', 'FAILED', 'EXPIRED', 'CANCELLED'];

/** A job's outputs cap, small enough for a test's files to pass it. */
export const OUTPUTS_MAX_BYTES = 10;

export const ARTIFACT_CONTEXT: Record<string, unknown> = {
  'flare:notifications': [{ id: CHANNEL_ID, type: 'slack', secretName: WEBHOOK_SECRET_NAME, states: CHANNEL_STATES }],
  'flare:outputsMaxBytes': OUTPUTS_MAX_BYTES,
};
