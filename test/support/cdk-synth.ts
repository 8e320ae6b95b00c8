/**
 * How the infra tests synthesize FlareStack: as bin/app.ts does (cdk-nag's
 * AwsSolutions pack registered, so an unacknowledged finding makes synth
 * throw), with stand-in handlers and, when it is missing, a stand-in
 * workflow, so a synth checks the infrastructure whatever state the handlers
 * other people write are in (`npm run synth` bundles the real ones). Used by
 * the test/infra/stack-*.test.ts files and test/infra/synth-matrix.test.ts;
 * call `removeStandIns()` in an `after` hook.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { App, Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { FlareCompute, type FlareComputeProps } from '../../lib/compute.js';
import { FlareStack, HANDLER_ENTRIES, type FlareStackProps, type HandlerKey } from '../../lib/flare-stack.js';
import { REPO_ROOT } from '../../lib/lambda-defaults.js';
import { DEFAULT_POOLS } from '../../lib/settings.js';

export const ASL_PATH = path.join(REPO_ROOT, 'statemachines', 'job-lifecycle.asl.json');

/** Handlers other people are still writing: always bundled from a stand-in. */
export const ALWAYS_STAND_IN: readonly HandlerKey[] = ['computeEvents', 'reconciler', 'streamPublisher', 'notifier'];

/** NodejsFunction needs entries under the project root, so they live in the git-ignored .cache/. */
let scratch: string | undefined;

export function standIns(): FlareStackProps {
  const props: { handlerEntries: { [K in HandlerKey]?: string }; workflowDefinitionPath?: string } = {
    handlerEntries: {},
  };
  const dir = () => {
    if (!scratch) {
      mkdirSync(path.join(REPO_ROOT, '.cache'), { recursive: true });
      scratch = mkdtempSync(path.join(REPO_ROOT, '.cache', 'infra-test-'));
    }
    return scratch;
  };
  for (const key of Object.keys(HANDLER_ENTRIES) as HandlerKey[]) {
    if (!ALWAYS_STAND_IN.includes(key) && existsSync(path.join(REPO_ROOT, HANDLER_ENTRIES[key]))) continue;
    const file = path.join(dir(), `${key}.ts`);
    if (!existsSync(file)) writeFileSync(file, 'export const handler = async (event: unknown) => event;\n');
    props.handlerEntries[key] = file;
  }
  if (!existsSync(ASL_PATH)) {
    const file = path.join(dir(), 'job-lifecycle.asl.json');
    writeFileSync(
      file,
      JSON.stringify({
        StartAt: 'Admit',
        States: {
          Admit: {
            Type: 'Task',
            Resource: '${TasksFunctionArn}',
            Parameters: { task: 'admit', 'jobId.$': '$.jobId' },
            Next: 'Run',
          },
          Run: {
            Type: 'Task',
            Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
            Parameters: { FunctionName: '${TasksFunctionArn}', Payload: { task: 'run', 'token.$': '$$.Task.Token' } },
            End: true,
          },
        },
      }),
    );
    props.workflowDefinitionPath = file;
  }
  return props;
}

/** Removes the stand-ins this process wrote. */
export function removeStandIns(): void {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  scratch = undefined;
}

export interface SynthOptions {
  /** Real esbuild bundling; otherwise bundling is skipped (fast). @default false */
  readonly bundle?: boolean;
  /** One FlareStack per id, in one app. @default ['FlareStack'] */
  readonly stackIds?: readonly string[];
}

/**
 * An app with FlareStacks and cdk-nag registered as bin/app.ts does. CloudFormation's
 * built-in schema validation is off: it costs ~15 s per synth and `npm run synth` runs it.
 */
export function synthApp(
  context: Record<string, unknown> = {},
  options: SynthOptions = {},
): { app: App; stacks: FlareStack[] } {
  const app = new App({
    builtinCloudFormationValidation: false,
    context: options.bundle ? context : { 'aws:cdk:bundling-stacks': [], ...context },
  });
  const stacks = (options.stackIds ?? ['FlareStack']).map((id) => new FlareStack(app, id, standIns()));
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stacks };
}

/** A template's resources by logical id, as the tests read them. */
export type Resources = Record<
  string,
  { Type: string; Properties?: any; DependsOn?: string | string[]; DeletionPolicy?: string }
>;

export interface SynthesizedStack {
  app: App;
  stack: FlareStack;
  template: Template;
  resources: Resources;
}

/**
 * One FlareStack synthesized as synthApp does, with its template and resources. A test file
 * calls it once per context in a `before` hook: node:test gives each file its own process,
 * so nothing is shared between files, and each synth costs a second (several with `bundle`).
 */
export function synthStack(
  context: Record<string, unknown> = {},
  options: { bundle?: boolean } = {},
): SynthesizedStack {
  const {
    app,
    stacks: [stack],
  } = synthApp(context, options);
  const template = Template.fromStack(stack);
  return { app, stack, template, resources: template.toJSON().Resources };
}

/** FlareCompute alone in a stack of its own, on a one-AZ VPC with the default pools; `props` add or override. */
export function computeStack(props: Partial<FlareComputeProps> = {}): {
  app: App;
  stack: Stack;
  compute: FlareCompute;
} {
  const app = new App();
  const stack = new Stack(app, 'Compute');
  const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 1, natGateways: 0 });
  const compute = new FlareCompute(stack, 'Compute', {
    vpc,
    subnetIds: ['subnet-0a1b2c3d4e5f60001'],
    pools: DEFAULT_POOLS,
    gpuAmiParameter: '/flare/test/ami',
    ...props,
  });
  return { app, stack, compute };
}

/** The logical id of an L2 construct's resource in its stack. */
export const logicalId = (stack: FlareStack, c: IConstruct): string => stack.getLogicalId(c.node.defaultChild as never);

/** A CloudFormation string value with intrinsics rendered as `<LogicalId>` / `<LogicalId.Attr>` / `<AWS::Pseudo>`. */
export function render(value: unknown): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, any>;
  if (v.Ref) return `<${v.Ref}>`;
  if (v['Fn::GetAtt']) return `<${v['Fn::GetAtt'].join('.')}>`;
  if (v['Fn::Join']) return (v['Fn::Join'][1] as unknown[]).map(render).join(v['Fn::Join'][0]);
  throw new Error(`cannot render ${JSON.stringify(value)}`);
}
