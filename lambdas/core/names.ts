/** Constants that are their own names (`JobState.RUNNING === 'RUNNING'`), from the list of them. */
export function byName<const T extends string>(names: readonly T[]): { readonly [K in T]: K } {
  return Object.fromEntries(names.map((name) => [name, name])) as { readonly [K in T]: K };
}
