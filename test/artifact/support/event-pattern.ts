/**
 * EventBridge event patterns and input transformers, as far as the template
 * uses them (Lambda's event filters are the same patterns). An operator this
 * does not implement throws, so a new kind of rule cannot silently match all.
 */

type Pattern = Record<string, unknown>;

export function matchesPattern(pattern: Pattern, event: unknown): boolean {
  if (typeof event !== 'object' || event === null) return false;
  const record = event as Record<string, unknown>;
  return Object.entries(pattern).every(([key, rule]) => {
    if (key.startsWith('$'))
      throw new Error(`event pattern operator ${key} is not implemented by the artifact harness`);
    const value = record[key];
    if (Array.isArray(rule)) return matchesAny(rule, value);
    if (typeof rule === 'object' && rule !== null) return matchesPattern(rule as Pattern, value);
    throw new Error(`event pattern field ${key} must be an array or an object, got ${JSON.stringify(rule)}`);
  });
}

function matchesAny(rules: unknown[], value: unknown): boolean {
  // A field that is an array matches when any of its elements does.
  const values = Array.isArray(value) ? value : [value];
  return rules.some((rule) => {
    if (typeof rule === 'object' && rule !== null)
      return matchesOperator(rule as Record<string, unknown>, value, values);
    return value !== undefined && values.some((v) => v === rule);
  });
}

function matchesOperator(rule: Record<string, unknown>, value: unknown, values: unknown[]): boolean {
  const [operator, operand] = Object.entries(rule)[0] ?? [];
  switch (operator) {
    case 'exists':
      return (value !== undefined) === operand;
    case 'prefix':
      return values.some((v) => typeof v === 'string' && v.startsWith(String(operand)));
    case 'suffix':
      return values.some((v) => typeof v === 'string' && v.endsWith(String(operand)));
    case 'equals-ignore-case':
      return values.some((v) => typeof v === 'string' && v.toLowerCase() === String(operand).toLowerCase());
    case 'anything-but': {
      if (value === undefined) return false;
      const excluded = Array.isArray(operand) ? operand : [operand];
      return values.every(
        (v) =>
          !excluded.some((e) =>
            typeof e === 'object' && e !== null ? matchesOperator(e as Record<string, unknown>, v, [v]) : e === v,
          ),
      );
    }
    case 'numeric': {
      const terms = operand as Array<string | number>;
      return values.some((v) => {
        if (typeof v !== 'number') return false;
        for (let i = 0; i < terms.length; i += 2) {
          const [op, n] = [terms[i], Number(terms[i + 1])];
          const ok =
            op === '='
              ? v === n
              : op === '<'
                ? v < n
                : op === '<='
                  ? v <= n
                  : op === '>'
                    ? v > n
                    : op === '>='
                      ? v >= n
                      : undefined;
          if (ok === undefined) throw new Error(`numeric operator ${op} is not implemented by the artifact harness`);
          if (!ok) return false;
        }
        return true;
      });
    }
    default:
      throw new Error(`event pattern operator ${operator} is not implemented by the artifact harness`);
  }
}

/** `$`, `$.detail.state`: the JSONPath forms an InputPathsMap uses. */
function valueAt(event: unknown, path: string): unknown {
  if (path === '$') return event;
  if (!path.startsWith('$.')) throw new Error(`input path ${path} is not implemented by the artifact harness`);
  return path
    .slice(2)
    .split('.')
    .reduce<unknown>(
      (v, key) => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[key] : undefined),
      event,
    );
}

/** A target's InputTransformer: `<name>` in quotes takes the text, outside quotes the JSON. */
export function transformInput(
  transformer: { InputPathsMap?: Record<string, string>; InputTemplate: string },
  event: unknown,
): string {
  const values = Object.fromEntries(
    Object.entries(transformer.InputPathsMap ?? {}).map(([name, path]) => [name, valueAt(event, path)]),
  );
  values['aws.events.event'] = event;
  values['aws.events.event.json'] = event;
  return transformer.InputTemplate.replace(
    /("?)<([A-Za-z0-9_.-]+)>("?)/g,
    (whole, open: string, name: string, close: string) => {
      if (!(name in values)) return whole;
      const value = values[name];
      if (open && close) return JSON.stringify(typeof value === 'string' ? value : JSON.stringify(value));
      return `${open}${JSON.stringify(value ?? null)}${close}`;
    },
  );
}
