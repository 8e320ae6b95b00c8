/**
 * The layer rules of lambdas/README.md, lib/README.md, cli/README.md and
 * contract/README.md, checked on every import: `npm run lint` runs this after
 * Biome. Imports are read with the TypeScript parser (static, type-only,
 * re-exports, `import()`, `require()`, `typeof import()`), and a relative
 * specifier is resolved to the folder it lands in, so `../../adapters/x.js`
 * from core is caught as surely as `@aws-sdk/client-ec2`.
 *
 *   node --import tsx scripts/check-imports.ts [root]
 */
import { type Dirent, readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export interface ImportRef {
  /** As written in the source. */
  specifier: string;
  line: number;
  /** `import type`, `export type` or `typeof import()`: erased, loads nothing at run time. */
  typeOnly: boolean;
}

export interface Violation {
  /** Repository-relative, with `/`. */
  file: string;
  line: number;
  specifier: string;
  reason: string;
}

/** What an import points at: a repository path (relative imports), or a package (`node:` for built-ins). */
type Target = { kind: 'path'; path: string } | { kind: 'package'; name: string };

interface Rule {
  /** Files this rule applies to, by repository-relative prefix. */
  from: string[];
  /** Why the import is refused, or undefined when it is allowed. */
  refuse: (target: Target, ref: ImportRef) => string | undefined;
}

const SDK = ['@aws-sdk/', '@smithy/'];
const LAMBDA_RUNTIME = ['@middy/', '@aws-lambda-powertools/', 'aws-lambda'];
const CDK = ['aws-cdk-lib', 'constructs', 'cdk-nag'];
/** The HTTP API's types, which the CLI may import as types (and nothing else from lambdas/). */
const API_TYPES = ['lambdas/core/views.ts', 'lambdas/core/schemas.ts'];

const under = (path: string, ...folders: string[]) => folders.some((f) => path === f || path.startsWith(`${f}/`));
const isPackage = (name: string, prefixes: string[]) =>
  prefixes.some((p) => (p.endsWith('/') ? name.startsWith(p) : name === p || name.startsWith(`${p}/`)));

export const RULES: Rule[] = [
  {
    // The domain and its ports reach the world only through ports: no adapter, no SDK, no runner.
    from: ['lambdas/core/', 'lambdas/ports/'],
    refuse: (t) => {
      if (t.kind === 'path' && !under(t.path, 'lambdas/core', 'lambdas/ports', 'contract'))
        return 'core and ports import only core, ports and contract/ (no adapter, handler, local runner, lib or cli)';
      if (t.kind === 'package' && isPackage(t.name, [...SDK, ...LAMBDA_RUNTIME, ...CDK]))
        return 'core and ports import no AWS SDK, Lambda runtime library or CDK (adapters do)';
      return undefined;
    },
  },
  {
    from: ['lambdas/'],
    refuse: (t) => {
      if (t.kind === 'path' && under(t.path, 'lib', 'cli', 'bin'))
        return 'lambdas/ never imports lib/, cli/ or bin/ (lib names handlers by path)';
      if (t.kind === 'package' && isPackage(t.name, CDK)) return 'lambdas/ never imports the CDK (it runs in Lambda)';
      return undefined;
    },
  },
  {
    from: ['lib/'],
    refuse: (t) =>
      t.kind === 'path' && under(t.path, 'lambdas', 'cli', 'bin')
        ? 'lib/ never imports lambdas/, cli/ or bin/ (it names handler files by path; shared words live in contract/)'
        : undefined,
  },
  {
    // A client of the HTTP API: node: modules, its own files, contract/, and the API's types.
    from: ['cli/'],
    refuse: (t, ref) => {
      if (t.kind === 'package')
        return t.name.startsWith('node:') ? undefined : 'cli/ uses no npm package, only node: modules';
      if (under(t.path, 'cli', 'contract')) return undefined;
      if (ref.typeOnly && API_TYPES.some((f) => t.path === f || t.path === f.replace(/\.ts$/, '.js'))) return undefined;
      return `cli/ imports only its own files, contract/ and, as \`import type\`, the HTTP API's types (${API_TYPES.join(', ')})`;
    },
  },
  {
    from: ['contract/'],
    refuse: (t) =>
      t.kind === 'path' && under(t.path, 'contract') ? undefined : 'contract/ imports nothing (every layer imports it)',
  },
];

const SOURCE = /\.(ts|mts|cts|js|mjs|cjs)$/;
const SKIP = new Set(['node_modules', '.git', 'cdk.out', '.cache', '.flare']);

/** Every import of one file's text, in source order. */
export function importsOf(fileName: string, text: string): ImportRef[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true);
  const refs: ImportRef[] = [];
  const add = (node: ts.Node, literal: ts.Expression | undefined, typeOnly: boolean) => {
    if (!literal || !ts.isStringLiteralLike(literal)) return;
    const line = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
    refs.push({ specifier: literal.text, line, typeOnly });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) add(node, node.moduleSpecifier, node.importClause?.isTypeOnly ?? false);
    else if (ts.isExportDeclaration(node)) add(node, node.moduleSpecifier, node.isTypeOnly);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference))
      add(node, node.moduleReference.expression, node.isTypeOnly);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node, node.argument.literal, true);
    else if (ts.isCallExpression(node)) {
      const callee = node.expression;
      const dynamic = callee.kind === ts.SyntaxKind.ImportKeyword;
      const required = ts.isIdentifier(callee) && callee.text === 'require';
      if (dynamic || required) add(node, node.arguments[0], false);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return refs;
}

function targetOf(root: string, file: string, specifier: string): Target {
  if (specifier.startsWith('.') || specifier.startsWith('/')) {
    const path = relative(root, resolve(dirname(join(root, file)), specifier))
      .split(sep)
      .join('/');
    return { kind: 'path', path };
  }
  if (specifier.startsWith('node:') || builtinModules.includes(specifier.split('/')[0]))
    return { kind: 'package', name: specifier.startsWith('node:') ? specifier : `node:${specifier}` };
  const parts = specifier.split('/');
  return { kind: 'package', name: specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0] };
}

function sourceFiles(root: string, folder: string): string[] {
  let entries: Dirent[];
  try {
    entries = readdirSync(join(root, folder), { withFileTypes: true });
  } catch {
    return []; // a layer the tree does not have (fixtures hold only a few)
  }
  return entries.flatMap((e) => {
    const path = folder ? `${folder}/${e.name}` : e.name;
    if (e.isDirectory()) return SKIP.has(e.name) ? [] : sourceFiles(root, path);
    return SOURCE.test(e.name) && !e.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Every import under `root` that breaks a layer rule, by file and line. */
export function checkImports(root: string): Violation[] {
  const folders = [...new Set(RULES.flatMap((r) => r.from.map((f) => f.split('/')[0])))];
  const violations: Violation[] = [];
  for (const file of folders.flatMap((f) => sourceFiles(root, f)).sort()) {
    const rules = RULES.filter((r) => r.from.some((prefix) => file.startsWith(prefix)));
    for (const ref of importsOf(file, readFileSync(join(root, file), 'utf8'))) {
      const target = targetOf(root, file, ref.specifier);
      // The first rule that refuses says why: one line per bad import.
      const reason = rules.map((r) => r.refuse(target, ref)).find((why) => why !== undefined);
      if (reason) violations.push({ file, line: ref.line, specifier: ref.specifier, reason });
    }
  }
  return violations;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
  const violations = checkImports(root);
  for (const v of violations) console.error(`${v.file}:${v.line}: imports '${v.specifier}': ${v.reason}`);
  if (violations.length > 0) {
    console.error(`check-imports: ${violations.length} import(s) cross a layer boundary`);
    process.exit(1);
  }
  console.log('check-imports: every import stays inside its layer');
}
