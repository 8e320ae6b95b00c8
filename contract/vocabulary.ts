/**
 * The words Flare's layers must agree on (DESIGN.md): job states and the names
 * of pools, projects, templates and images. lib/ checks CDK context with them,
 * lambdas/core validates the API's input with them, cli/ reads the API's
 * answers with them. Plain data that imports nothing, so any layer may import it.
 */

/** Every state a job can be in, in the order of its life. */
export const JOB_STATES = [
  'PENDING',
  'WAITING',
  'LAUNCHING',
  'RUNNING',
  'STOPPING',
  'SUCCEEDED',
  'FAILED',
  'EXPIRED',
  'CANCELLED',
] as const;
export type JobStateName = (typeof JOB_STATES)[number];

/** Finished: the job never changes again. */
export const TERMINAL_STATES: readonly JobStateName[] = ['SUCCEEDED', 'FAILED', 'EXPIRED', 'CANCELLED'];
/** Queued: stored, not admitted, holding nothing. */
export const QUEUED_STATES: readonly JobStateName[] = ['PENDING', 'WAITING'];

/** The name of a pool, project, template or image: lowercase, 1-63 characters. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;
/** NAME_PATTERN in words, for error messages. */
export const NAME_RULE = "1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit";

/**
 * The root snapshot in GB of the default GPU AMI: no root volume can be smaller,
 * so it is the floor of a template's volumeSizeGb and of `flare:minVolumeSizeGb`.
 */
export const MIN_VOLUME_SIZE_GB = 75;

/** Bytes of $FLARE_OUTPUT_DIR a job keeps unless the deployment says otherwise (local `outputs.maxBytes`, CDK `flare:outputsMaxBytes`). */
export const DEFAULT_MAX_OUTPUT_BYTES = 10 * 2 ** 30;
