/** The one check of a construct's whole-number props, so each refuses a bad value with the same message. */
import type { IConstruct } from 'constructs';

/**
 * `value` if it is an integer from `min` to `max`; else throws
 * `<construct path>: <name> must be an integer from <min> to <max>[ <unit>], got <value>`.
 */
export function integerInRange(
  scope: IConstruct,
  name: string,
  value: number,
  [min, max]: readonly [number, number],
  unit?: string,
): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(
      `${scope.node.path}: ${name} must be an integer from ${min} to ${max}${unit ? ` ${unit}` : ''}, got ${value}`,
    );
  }
  return value;
}
