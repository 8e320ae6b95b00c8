/**
 * Which store-port methods (JobRecords.getJob, LimitStore.listPools, ...) a Lambda handler can call,
 * read from the code with the TypeScript checker: every declaration the entry module's top level
 * refers to, and everything those refer to, transitively; a class or function counts whole (with the
 * functions nested in it), so the answer errs towards more methods, never fewer. The DynamoDB grants
 * are sized from it (test/infra/dynamodb-least-privilege.test.ts).
 */
import * as path from 'node:path';
import ts from 'typescript';
import { REPO_ROOT } from '../../lib/lambda-defaults.js';

/** The ports the DynamoDB adapters implement (lambdas/ports/*.ts), by interface name. */
export const STORE_PORTS = ['JobRecords', 'JobQueue', 'LimitStore', 'Catalog', 'ReconcileStore'] as const;

const LAMBDAS = path.join(REPO_ROOT, 'lambdas') + path.sep;
const PORTS = path.join(REPO_ROOT, 'lambdas', 'ports') + path.sep;

type Unit = ts.Node;

/** `Port.method` for every store-port member reachable from each entry (paths from the repository root). */
export function storePortCalls(entries: readonly string[]): Map<string, Set<string>> {
  const program = ts.createProgram(
    entries.map((e) => path.join(REPO_ROOT, e)),
    {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      strict: true,
      skipLibCheck: true,
      noEmit: true,
      resolveJsonModule: true,
      esModuleInterop: true,
    },
  );
  const checker = program.getTypeChecker();
  const unitsRef = new Map<Unit, { units: Set<Unit>; ports: Set<string> }>();

  /** The whole-counted declaration a node belongs to: its outermost function, class or top-level variable. */
  const unitOf = (node: ts.Node): Unit | undefined => {
    let unit: Unit | undefined;
    for (let n: ts.Node | undefined = node; n && !ts.isSourceFile(n); n = n.parent) {
      if (isUnit(n)) unit = n;
    }
    return unit;
  };

  const refsOf = (unit: Unit) => {
    const known = unitsRef.get(unit);
    if (known) return known;
    const found = { units: new Set<Unit>(), ports: new Set<string>() };
    unitsRef.set(unit, found);
    const visit = (node: ts.Node) => {
      if (ts.isIdentifier(node)) {
        let symbol = checker.getSymbolAtLocation(node);
        if (symbol && symbol.flags & ts.SymbolFlags.Alias) symbol = checker.getAliasedSymbol(symbol);
        for (const decl of symbol?.declarations ?? []) {
          const file = decl.getSourceFile().fileName;
          if (!file.startsWith(LAMBDAS)) continue;
          if (file.startsWith(PORTS)) {
            const owner = decl.parent;
            if (
              (ts.isMethodSignature(decl) || ts.isPropertySignature(decl)) &&
              ts.isInterfaceDeclaration(owner) &&
              (STORE_PORTS as readonly string[]).includes(owner.name.text)
            )
              found.ports.add(`${owner.name.text}.${decl.name.getText()}`);
            continue;
          }
          const target = unitOf(decl);
          if (target && target !== unit) found.units.add(target);
          // A reference into a module also runs its top level (what no unit holds).
          found.units.add(decl.getSourceFile());
        }
      }
      ts.forEachChild(node, visit);
    };
    if (ts.isSourceFile(unit)) {
      // What runs when the module loads; imports count where they are used, types never run.
      for (const statement of unit.statements) if (!isUnit(statement) && runs(statement)) visit(statement);
    } else ts.forEachChild(unit, visit);
    return found;
  };

  const result = new Map<string, Set<string>>();
  for (const entry of entries) {
    const source = program.getSourceFile(path.join(REPO_ROOT, entry));
    if (!source) throw new Error(`port-calls: ${entry} is not in the program`);
    const seen = new Set<Unit>();
    const ports = new Set<string>();
    const queue: Unit[] = [source, ...topLevelUnits(source)];
    while (queue.length > 0) {
      const unit = queue.pop()!;
      if (seen.has(unit)) continue;
      seen.add(unit);
      const refs = refsOf(unit);
      for (const p of refs.ports) ports.add(p);
      for (const u of refs.units) if (!seen.has(u)) queue.push(u);
    }
    result.set(entry, ports);
  }
  return result;
}

function isUnit(node: ts.Node): boolean {
  return (
    ts.isFunctionDeclaration(node) ||
    ts.isClassDeclaration(node) ||
    ts.isFunctionExpression(node) ||
    ts.isArrowFunction(node) ||
    ts.isMethodDeclaration(node) ||
    (ts.isVariableStatement(node) && ts.isSourceFile(node.parent))
  );
}

function runs(statement: ts.Statement): boolean {
  return !(
    ts.isImportDeclaration(statement) ||
    ts.isExportDeclaration(statement) ||
    ts.isInterfaceDeclaration(statement) ||
    ts.isTypeAliasDeclaration(statement) ||
    ts.isImportEqualsDeclaration(statement)
  );
}

function topLevelUnits(source: ts.SourceFile): Unit[] {
  return source.statements.filter(isUnit);
}
