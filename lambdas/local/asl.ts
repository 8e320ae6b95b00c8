import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const JOB_LIFECYCLE_ASL = fileURLToPath(new URL('../../statemachines/job-lifecycle.asl.json', import.meta.url));

/** `${Name}` placeholders filled the way CDK's definitionSubstitutions fills them. */
export function substitute(text: string, values: Record<string, string>): string {
  return text.replace(/\$\{([A-Za-z0-9_]+)\}/g, (whole, name: string) => {
    if (!(name in values)) throw new Error(`state machine placeholder \${${name}} has no substitution`);
    return values[name];
  });
}

export function loadDefinition(path: string, values: Record<string, string>): Record<string, unknown> {
  return JSON.parse(substitute(readFileSync(path, 'utf8'), values)) as Record<string, unknown>;
}
