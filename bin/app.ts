/**
 * The CDK app: `npx cdk synth` / `npx cdk deploy` (cdk.json runs this file).
 * Settings come from CDK context (lib/README.md). cdk-nag's AwsSolutions pack
 * checks the whole app during synthesis; an unacknowledged finding fails it.
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { FlareStack } from '../lib/flare-stack.js';

const app = new App();
new FlareStack(app, 'FlareStack');
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
