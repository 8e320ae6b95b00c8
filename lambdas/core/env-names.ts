/** Environment variable names Flare sets in every job, refused in a job's own `env` and `secrets`. */

const NVIDIA_DEVICE_SELECTORS = ['NVIDIA_VISIBLE_DEVICES', 'NVIDIA_MIG_CONFIG_DEVICES', 'NVIDIA_MIG_MONITOR_DEVICES'];

export const FLARE_SET_ENV_RULE = `is set by Flare and may not be set by a job (FLARE_*, ${NVIDIA_DEVICE_SELECTORS.join(', ')})`;

/**
 * Flare's own names, and the NVIDIA runtime's device selectors, which would
 * otherwise let a container ask the runtime for GPUs it was not given.
 * Refused at submit, and again where a job starts (container-command.ts).
 */
export function isFlareSetEnvName(name: string): boolean {
  return name.startsWith('FLARE_') || NVIDIA_DEVICE_SELECTORS.includes(name);
}
