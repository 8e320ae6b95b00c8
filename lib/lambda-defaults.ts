/**
 * The one place that decides how every Flare Lambda is built and run:
 * runtime, architecture, ESM bundling with the local esbuild (never Docker),
 * its own log group with a retention, JSON logs, X-Ray tracing, and a role
 * that starts empty (no AWS managed policy) and gets only what `grant*`
 * methods add.
 */
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { LogLevel, NodejsFunction, OutputFormat, type BundlingOptions } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { integerInRange } from './construct-props.js';

/** The repository root: handler entries and the lock file are named from here. */
export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The newest Node.js line Lambda runs; the suite runs on Node 24 LTS too (.ci/run). */
export const FLARE_RUNTIME = lambda.Runtime.NODEJS_24_X;

/**
 * esbuild's ESM output has no `require`; CommonJS dependencies bundled into
 * it (parts of the AWS SDK, middy plugins) still call it, so give them one.
 */
export const ESM_REQUIRE_BANNER =
  "import { createRequire as flareCreateRequire } from 'node:module'; const require = flareCreateRequire(import.meta.url);";

/** How every handler is bundled; test/infra/error-names.test.ts bundles with the same options. */
export const FLARE_BUNDLING = {
  format: OutputFormat.ESM,
  target: 'node24',
  mainFields: ['module', 'main'],
  banner: ESM_REQUIRE_BANNER,
  // The SDK version is pinned in package-lock.json; ship that one, not the runtime's.
  bundleAwsSDK: true,
  minify: true,
  // The workflow's Retry/Catch match errors by name (core/errors.ts sets
  // name from the class): minified class names would never match.
  keepNames: true,
  sourceMap: true,
  sourcesContent: false,
  forceDockerBundling: false,
  logLevel: LogLevel.WARNING,
} as const satisfies BundlingOptions;

/**
 * FLARE_BUNDLING as plain esbuild options, for what bundles a handler outside
 * CDK the way the stack does (the bundle figure in bench/, the error-name test).
 */
export function esbuildOptions(): EsbuildOptions {
  return {
    bundle: true,
    platform: 'node',
    format: FLARE_BUNDLING.format === OutputFormat.ESM ? 'esm' : 'cjs',
    target: FLARE_BUNDLING.target,
    mainFields: [...FLARE_BUNDLING.mainFields],
    banner: { js: FLARE_BUNDLING.banner },
    minify: FLARE_BUNDLING.minify,
    keepNames: FLARE_BUNDLING.keepNames,
    sourcemap: FLARE_BUNDLING.sourceMap,
    sourcesContent: FLARE_BUNDLING.sourcesContent,
  };
}

/** The part of esbuild's BuildOptions that esbuildOptions() sets (lib/ does not depend on esbuild's types). */
export interface EsbuildOptions {
  bundle: boolean;
  platform: 'node';
  format: 'esm' | 'cjs';
  target: string;
  mainFields: string[];
  banner: { js: string };
  minify: boolean;
  keepNames: boolean;
  sourcemap: boolean;
  sourcesContent: boolean;
}

export interface FlareFunctionProps {
  /** The handler's entry file, relative to the repository root or absolute. */
  readonly entry: string;
  /** @default 'handler' */
  readonly handler?: string;
  readonly description: string;
  /** @default {} */
  readonly environment?: Record<string, string>;
  /** @default Duration.seconds(30) */
  readonly timeout?: Duration;
  /** @default 512 */
  readonly memorySize?: number;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** @default lambda.Architecture.ARM_64 */
  readonly architecture?: lambda.Architecture;
  /** Shell commands run after esbuild, to put more files in the package (the dashboard's bundle). @default none */
  readonly afterBundling?: (inputDir: string, outputDir: string) => string[];
}

export class FlareFunction extends Construct {
  public readonly function: NodejsFunction;
  public readonly role: iam.Role;
  public readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: FlareFunctionProps) {
    super(scope, id);
    if (!props.entry) throw new Error(`${this.node.path}: entry is required`);
    const memorySize = integerInRange(this, 'memorySize', props.memorySize ?? 512, [128, 10240], 'MB');
    const entry = path.isAbsolute(props.entry) ? props.entry : path.join(REPO_ROOT, props.entry);

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `${props.description} (Flare)`,
    });
    this.logGroup.grantWrite(this.role);

    this.function = new NodejsFunction(this, 'Function', {
      entry,
      handler: props.handler ?? 'handler',
      description: props.description,
      runtime: FLARE_RUNTIME,
      architecture: props.architecture ?? lambda.Architecture.ARM_64,
      memorySize,
      timeout: props.timeout ?? Duration.seconds(30),
      role: this.role,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
      systemLogLevelV2: lambda.SystemLogLevel.WARN,
      tracing: lambda.Tracing.ACTIVE,
      projectRoot: REPO_ROOT,
      depsLockFilePath: path.join(REPO_ROOT, 'package-lock.json'),
      environment: { NODE_OPTIONS: '--enable-source-maps', ...props.environment },
      bundling: props.afterBundling
        ? {
            ...FLARE_BUNDLING,
            commandHooks: {
              beforeBundling: () => [],
              beforeInstall: () => [],
              afterBundling: props.afterBundling,
            },
          }
        : FLARE_BUNDLING,
    });

    // Tracing adds xray:PutTraceSegments/PutTelemetryRecords on '*' to this role.
    Validations.of(this.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'X-Ray PutTraceSegments and PutTelemetryRecords support no resource-level permissions; CDK adds them for active tracing.',
    });
  }
}
