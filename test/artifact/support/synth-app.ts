/**
 * Synthesizes the real app into the directory named by argv[2], as bin/app.ts
 * does (cdk-nag included, handlers bundled by esbuild), with the context the
 * artifact tests need: one chat channel, so the notifier exists. Run as a child
 * process by ./synth.ts, so CDK's memory and esbuild's spawns stay out of the
 * test process.
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { FlareStack } from '../../../lib/flare-stack.js';
import { ARTIFACT_STACK_NAME } from './cfn-resolve.js';
import { ARTIFACT_CONTEXT } from './synth-context.js';

const outdir = process.argv[2];
if (!outdir) throw new Error('usage: synth-app.ts <outdir>');
const app = new App({ outdir, context: ARTIFACT_CONTEXT });
new FlareStack(app, ARTIFACT_STACK_NAME);
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
app.synth();
